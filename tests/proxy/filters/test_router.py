"""Redirect Location rules (Envoy's newUri), shadow hosts, response flags, local replies."""
from __future__ import annotations

import pytest

from isthmus.proxy.config.route_action import RedirectConfig
from isthmus.proxy.filters.local_reply import FLAG, flags_string, grpc_message, grpc_status_for, reset_body
from isthmus.proxy.filters.mirror import shadow_authority
from isthmus.proxy.filters.router import redirect_location
from isthmus.proxy.runtime.hcm import normalize_path
from tests.proxy.filters.fakes import FakeConn, FakeStream


class _Match:
    kind, value = "prefix", "/old"


class _Route:
    match = _Match()


def loc(redirect, authority=b"shop.example:80", target=b"/old/item?id=1", xfp=b"http", tls=False):
    s = FakeStream([(b"x-forwarded-proto", xfp)] if xfp else [], target=target, authority=authority, conn=FakeConn(tls=tls))
    s.route = _Route()
    return redirect_location(s, redirect)


@pytest.mark.parametrize("redirect,expected", [
    (RedirectConfig(scheme="https"), "https://shop.example/old/item?id=1"),  # default port of the old scheme dropped
    (RedirectConfig(host="other.example"), "http://other.example/old/item?id=1"),
    (RedirectConfig(port=8443), "http://shop.example:8443/old/item?id=1"),
    (RedirectConfig(path="/new"), "http://shop.example:80/new?id=1"),
    (RedirectConfig(path="/new?x=2"), "http://shop.example:80/new?x=2"),
    (RedirectConfig(path="/new", strip_query=True), "http://shop.example:80/new"),
    (RedirectConfig(prefix_rewrite="/fresh"), "http://shop.example:80/fresh/item?id=1"),
    (None, "http://shop.example:80/old/item?id=1"),
])
def test_redirect_location(redirect, expected):
    assert loc(redirect) == expected


def test_redirect_keeps_non_default_port_and_uses_forwarded_proto():
    assert loc(RedirectConfig(scheme="https"), authority=b"shop.example:8080") == "https://shop.example:8080/old/item?id=1"
    assert loc(RedirectConfig(scheme="http"), authority=b"shop.example:443", xfp=b"https") == "http://shop.example/old/item?id=1"


def test_shadow_host():
    assert shadow_authority(b"reviews:9080") == b"reviews-shadow:9080"
    assert shadow_authority(b"reviews") == b"reviews-shadow"
    assert shadow_authority(b"[::1]:80") == b"[::1]-shadow:80"


def test_flags_in_envoy_order():
    assert flags_string(0) == "-"
    assert flags_string(FLAG["URX"] | FLAG["UF"]) == "UF,URX"
    assert flags_string(FLAG["DI"] | FLAG["FI"] | FLAG["UH"]) == "UH,DI,FI"


def test_local_reply_bodies_and_grpc_mapping():
    assert reset_body("connection_failure") == (b"upstream connect error or disconnect/reset before headers. "
                                                b"reset reason: connection failure")
    assert reset_body("overflow", retried=True).endswith(b"retried and the latest reset reason: overflow")
    assert b"transport failure reason: TLS_error" in reset_body("connection_failure", "TLS_error:|x")
    assert [grpc_status_for(s) for s in (400, 401, 403, 404, 429, 502, 503, 504, 500)] == [13, 16, 7, 12, 14, 14, 14, 14, 2]
    assert grpc_message(b"a b%\n") == b"a b%25%0A"


@pytest.mark.parametrize("path,expected", [
    ("/a/./b/../c", "/a/c"), ("/%41%62c/%2F", "/Abc/%2F"), ("/a\\b", "/a/b"), ("/../x", "/x"), ("/bad%zz", None),
    ("/a/b/..", "/a/"),
])
def test_normalize_path(path, expected):
    assert normalize_path(path) == expected
    assert normalize_path("/a//b", merge_slashes=True) == "/a/b"
