"""headers.py: hop-by-hop removal and helpers."""
from __future__ import annotations

from isthmus.proxy.protocol.headers import (get_all, get_header, header_tokens, join_cookies,
                                            lower_name, strip_hop_by_hop, valid_authority)


def test_hop_by_hop_removed_end_to_end_kept():
    headers = [(b"connection", b"keep-alive, X-Foo"), (b"keep-alive", b"timeout=5"),
               (b"proxy-connection", b"keep-alive"), (b"transfer-encoding", b"chunked"),
               (b"upgrade", b"h2c"), (b"te", b"gzip"), (b"x-foo", b"nominated"),
               (b"http2-settings", b"AAA"), (b"content-type", b"text/html"),
               (b"x-request-id", b"1")]
    assert strip_hop_by_hop(headers) == [(b"content-type", b"text/html"), (b"x-request-id", b"1")]


def test_te_trailers_survives_for_grpc():
    assert strip_hop_by_hop([(b"te", b"trailers")]) == [(b"te", b"trailers")]
    assert strip_hop_by_hop([(b"te", b"gzip, Trailers")]) == [(b"te", b"trailers")]


def test_upgrade_kept_for_websocket():
    headers = [(b"connection", b"Upgrade"), (b"upgrade", b"websocket"),
               (b"sec-websocket-key", b"k")]
    assert strip_hop_by_hop(headers, websocket=True) == [(b"upgrade", b"websocket"),
                                                         (b"sec-websocket-key", b"k")]
    assert strip_hop_by_hop(headers) == [(b"sec-websocket-key", b"k")]


def test_lookup_helpers():
    headers = [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]
    assert get_header(headers, b"a") == b"1" and get_header(headers, b"z") is None
    assert get_all(headers, b"a") == [b"1", b"3"]
    assert header_tokens(b" Keep-Alive ,, Upgrade") == [b"keep-alive", b"upgrade"]


def test_lower_name_shares_constants():
    assert lower_name(b"Content-Type") is lower_name(b"content-type")
    assert lower_name(b"X-Custom-Thing") == b"x-custom-thing"


def test_valid_authority():
    for good in (b"reviews", b"reviews.default.svc.cluster.local:9080", b"[::1]:80",
                 b"10.0.0.1", b"user@h"):
        assert valid_authority(good), good
    for bad in (b"", b"a b", b"a/b", b"a\x00", b"h\\x", b"h\r\n"):
        assert not valid_authority(bad), bad


def test_join_cookies():
    single = [(b"cookie", b"a=1")]
    assert join_cookies(single) is single
    assert join_cookies([(b"cookie", b"a=1"), (b"x", b"y"), (b"cookie", b"b=2")]) == [
        (b"x", b"y"), (b"cookie", b"a=1; b=2")]
