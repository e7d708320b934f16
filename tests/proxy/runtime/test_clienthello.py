"""The ClientHello / HTTP sniffers of the listener filters, on bytes real clients send."""
from __future__ import annotations

import ssl

import pytest

from isthmus.proxy.runtime.clienthello import NEED_MORE, NOT_TLS, ClientHello, inspect_client_hello, inspect_http


def client_hello(sni: str | None = "Reviews.Default.svc", alpn=("h2", "http/1.1")) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_sni_and_alpn_of_a_real_client_hello():
    hello = inspect_client_hello(client_hello())
    assert hello == ClientHello("reviews.default.svc", ("h2", "http/1.1"))
    assert inspect_client_hello(client_hello(None, ())) == ClientHello("", ())


def test_every_prefix_asks_for_more():
    data = client_hello()
    for n in (1, 3, 5, 9, len(data) // 2, len(data) - 1):
        assert inspect_client_hello(data[:n]) is NEED_MORE


def test_hello_split_across_records():
    data = client_hello()
    body = data[5:]
    first, second = body[:40], body[40:]
    records = b"\x16\x03\x01" + len(first).to_bytes(2, "big") + first + b"\x16\x03\x01" + len(second).to_bytes(2, "big") + second
    assert inspect_client_hello(records) == ClientHello("reviews.default.svc", ("h2", "http/1.1"))


def test_plaintext_and_garbage_are_not_tls():
    assert inspect_client_hello(b"GET / HTTP/1.1\r\n") is NOT_TLS
    assert inspect_client_hello(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00") is NOT_TLS  # a ServerHello, not a ClientHello
    bad = bytearray(client_hello())
    bad[9 + 2 + 32] = 0xFF  # session id length past the end
    assert inspect_client_hello(bytes(bad)) is NOT_TLS


def test_too_large_is_not_tls():
    data = client_hello()
    assert inspect_client_hello(data, max_size=64) is NOT_TLS


@pytest.mark.parametrize("data,expected", [
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2c"),
    (b"PRI * HTTP/2", NEED_MORE),
    (b"GET / HTTP/1.1\r\nhost: x\r\n", "http/1.1"),
    (b"POST /x HTTP/1.0\r\n", "http/1.0"),
    (b"GET /partial", NEED_MORE),
    (b"\x00\x01binary", None),
    (b"GET / SPDY/3\r\n", None),
])
def test_http_inspector(data, expected):
    assert inspect_http(data) == expected
