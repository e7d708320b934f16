"""TLS ClientHello parsing for the tls_inspector listener filter (pure, no I/O).

`inspect_client_hello(data)` looks at the first bytes of a connection and returns
`NEED_MORE` (a prefix of a ClientHello: read more), `NOT_TLS` (plaintext, or bytes
that are not a well-formed ClientHello: Envoy then reports transport `raw_buffer`),
or a `ClientHello` with the SNI host name (lower-cased) and the ALPN protocols in the
client's order. A ClientHello may span several TLS records; it is reassembled here.
Larger than `max_size` → NOT_TLS (Envoy: client_hello_too_large, then raw_buffer).
"""
from __future__ import annotations

from dataclasses import dataclass

HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
EXT_SERVER_NAME = 0x0000
EXT_ALPN = 0x0010
DEFAULT_MAX_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ClientHello:
    server_name: str = ""
    alpn: tuple[str, ...] = ()


class _Status:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_MORE = _Status("NEED_MORE")
NOT_TLS = _Status("NOT_TLS")


class _Malformed(Exception):
    pass


def _handshake_bytes(data: bytes, max_size: int) -> bytes | _Status:
    """Concatenated handshake-record payloads until the ClientHello is complete."""
    out = bytearray()
    pos = 0
    need = None  # total handshake message length once known
    while True:
        if len(data) - pos < 5:
            return NEED_MORE
        if data[pos] != HANDSHAKE or data[pos + 1] != 3:
            return NOT_TLS
        length = (data[pos + 3] << 8) | data[pos + 4]
        if length == 0 or length > 18432:
            return NOT_TLS
        end = pos + 5 + length
        out += data[pos + 5:min(end, len(data))]
        if need is None and len(out) >= 4:
            if out[0] != CLIENT_HELLO:
                return NOT_TLS
            need = 4 + ((out[1] << 16) | (out[2] << 8) | out[3])
            if need > max_size:
                return NOT_TLS
        if need is not None and len(out) >= need:
            return bytes(out[:need])
        if end > len(data):
            return NEED_MORE
        pos = end


def _u8_block(buf: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 1 > len(buf):
        raise _Malformed
    n = buf[pos]
    end = pos + 1 + n
    if end > len(buf):
        raise _Malformed
    return buf[pos + 1:end], end


def _u16_block(buf: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(buf):
        raise _Malformed
    n = (buf[pos] << 8) | buf[pos + 1]
    end = pos + 2 + n
    if end > len(buf):
        raise _Malformed
    return buf[pos + 2:end], end


def _server_name(ext: bytes) -> str:
    names, _ = _u16_block(ext, 0)
    pos = 0
    while pos + 3 <= len(names):
        kind = names[pos]
        n = (names[pos + 1] << 8) | names[pos + 2]
        value = names[pos + 3:pos + 3 + n]
        if len(value) != n:
            raise _Malformed
        if kind == 0:  # host_name
            return value.decode("ascii", "replace").lower()
        pos += 3 + n
    return ""


def _alpn(ext: bytes) -> tuple[str, ...]:
    protos, _ = _u16_block(ext, 0)
    out = []
    pos = 0
    while pos < len(protos):
        value, pos = _u8_block(protos, pos)
        out.append(value.decode("ascii", "replace"))
    return tuple(out)


def parse_client_hello_message(msg: bytes) -> ClientHello:
    """A complete handshake message (type, 3-byte length, body) → ClientHello."""
    body = msg[4:]
    pos = 2 + 32  # client_version, random
    _, pos = _u8_block(body, pos)  # session_id
    _, pos = _u16_block(body, pos)  # cipher_suites
    _, pos = _u8_block(body, pos)  # compression_methods
    if pos == len(body):
        return ClientHello()  # no extensions (SSLv3-style hello)
    exts, _ = _u16_block(body, pos)
    sni, alpn = "", ()
    pos = 0
    while pos + 4 <= len(exts):
        kind = (exts[pos] << 8) | exts[pos + 1]
        data, pos = _u16_block(exts, pos + 2)
        if kind == EXT_SERVER_NAME:
            sni = _server_name(data)
        elif kind == EXT_ALPN:
            alpn = _alpn(data)
    return ClientHello(sni, alpn)


def inspect_client_hello(data: bytes, max_size: int = DEFAULT_MAX_SIZE) -> ClientHello | _Status:
    if not data:
        return NEED_MORE
    if data[0] != HANDSHAKE:
        return NOT_TLS
    msg = _handshake_bytes(data, max_size)
    if isinstance(msg, _Status):
        return msg
    try:
        return parse_client_hello_message(msg)
    except _Malformed:
        return NOT_TLS


def inspect_http(data: bytes) -> str | None | _Status:
    """http_inspector: "h2c" for the HTTP/2 preface, "http/1.1" / "http/1.0" for a
    request line, None when it is not HTTP, NEED_MORE while undecided."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    n = min(len(data), len(preface))
    if data[:n] == preface[:n]:
        return "h2c" if n == len(preface) else NEED_MORE
    line_end = data.find(b"\r\n")
    if line_end < 0:
        if len(data) > 8192:
            return None
        head = data.split(b" ", 1)[0]
        return NEED_MORE if head.isalpha() and head.isupper() and len(head) <= 16 else None
    parts = data[:line_end].split(b" ")
    if len(parts) != 3 or not parts[0].isalpha():
        return None
    if parts[2] == b"HTTP/1.1":
        return "http/1.1"
    if parts[2] == b"HTTP/1.0":
        return "http/1.0"
    return None
