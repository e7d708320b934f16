"""XXH64 and Envoy's hash policies."""
from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isthmus.proxy.upstream.hashing import (
    CookieHash, HeaderHash, QueryParameterHash, SourceIpHash, hash_str, parse_cookies, parse_query,
    request_hash, xxh64,
)


def test_reference_vectors():
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"a") == 0xD24EC4F1A98C6E5B
    assert xxh64(b"abc") == 0x44BC2CF5AD770999


def _libxxhash():
    name = ctypes.util.find_library("xxhash")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.XXH64.restype = ctypes.c_uint64
    lib.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    return lib


LIB = _libxxhash()


@pytest.mark.skipif(LIB is None, reason="libxxhash not installed")
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=2**64 - 1))
def test_matches_the_c_library(data, seed):
    assert xxh64(data, seed) == LIB.XXH64(data, len(data), seed)


def test_header_hash_is_order_independent_and_chains_values():
    one = request_hash([HeaderHash("x-user")], headers={"x-user": "alice"})
    assert one.hash == hash_str("alice")
    a = request_hash([HeaderHash("x-v")], headers={"x-v": ["b", "a"]})
    b = request_hash([HeaderHash("x-v")], headers={"x-v": ["a", "b"]})
    assert a.hash == b.hash == hash_str("b", hash_str("a"))
    assert request_hash([HeaderHash("x-user")], headers={}).hash is None


def test_policies_combine_with_rotate_xor_and_terminal_stops():
    h1, h2 = hash_str("alice"), hash_str("10.1.1.1")
    both = request_hash([HeaderHash("x-user"), SourceIpHash()], headers={"x-user": "alice"}, source_ip="10.1.1.1")
    rot = ((h1 << 1) | (h1 >> 63)) & (2**64 - 1)
    assert both.hash == rot ^ h2
    term = request_hash([HeaderHash("x-user", terminal=True), SourceIpHash()],
                        headers={"x-user": "alice"}, source_ip="10.1.1.1")
    assert term.hash == h1
    # a terminal policy that produced nothing does not stop evaluation
    skip = request_hash([HeaderHash("x-none", terminal=True), SourceIpHash()], source_ip="10.1.1.1")
    assert skip.hash == h2


def test_cookie_hash_uses_existing_cookie():
    r = request_hash([CookieHash("session", ttl=3600)], cookies={"session": "abc"})
    assert r.hash == hash_str("abc") and r.set_cookie is None


def test_cookie_generated_when_missing_with_ttl():
    r = request_hash([CookieHash("session", ttl=3600, path="/")], connection_id="10.0.0.9:5555|10.0.0.1:80")
    assert r.set_cookie is not None
    value = r.set_cookie.value
    assert len(value) == 16 and r.hash == hash_str(value)
    assert r.set_cookie.header_value() == f'session="{value}"; Max-Age=3600; Path=/; HttpOnly'
    # the same connection gets the same cookie, hence the same host
    again = request_hash([CookieHash("session", ttl=3600, path="/")], connection_id="10.0.0.9:5555|10.0.0.1:80")
    assert again.set_cookie.value == value
    session = request_hash([CookieHash("s", ttl=0)], connection_id="c")
    assert "Max-Age" not in session.set_cookie.header_value()
    assert request_hash([CookieHash("session")]).hash is None  # no ttl: never generated


def test_query_parameter_hash_and_parsers():
    q = parse_query("/p?a=1&u=bob%20x&u=second#frag")
    assert q == {"a": "1", "u": "bob x"}
    assert request_hash([QueryParameterHash("u")], query=q).hash == hash_str("bob x")
    assert parse_cookies(['a=1; b="two"', "a=3; c"]) == {"a": "1", "b": "two"}


def test_hash_is_stable_across_processes():
    # Envoy's value for the same input; Python's salted hash() would differ per process.
    assert hash_str("10.0.0.1:8080_0") == xxh64(b"10.0.0.1:8080_0")
