"""HTTP/2 message rules for received header blocks (RFC 9113 section 8): pure
functions, a decoded field list in, its parts out, `Malformed` when the message
breaks a rule (the caller resets that stream with PROTOCOL_ERROR).

Character rules (section 8.2.1) are checked by the HPACK decoder as it decodes
literals (hpack_decoder.py); these functions check what needs the whole list:
pseudo-header fields (known, once each, first, request vs response), required
fields, connection-specific fields, TE, content-length, Host vs :authority.
Cookie crumbs are joined into one ``cookie`` field at the end, for HTTP/1 peers.
"""
from __future__ import annotations

Fields = list[tuple[bytes, bytes]]


class Malformed(Exception):
    """The message is malformed (RFC 9113 section 8.1.1)."""


_CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                                  b"transfer-encoding", b"upgrade"})
# Regular fields that need a closer look; anything else is passed through untouched.
_SPECIAL = _CONNECTION_SPECIFIC | {b"cookie", b"content-length", b"te", b"host", b"expect"}
_REQUEST_PSEUDO = {b":method": 0, b":scheme": 1, b":authority": 2, b":path": 3, b":protocol": 4}
_HTTP_SCHEMES = frozenset({b"http", b"https"})


def _content_length(value: bytes, previous: int | None) -> int:
    if not value.isdigit():
        raise Malformed(f"invalid content-length {value!r}")
    n = int(value)
    if previous is not None and previous != n:
        raise Malformed("conflicting content-length fields")
    return n


class RequestParts:
    """What a valid request header block carries."""

    __slots__ = ("method", "scheme", "authority", "path", "protocol", "headers",
                 "content_length", "expect_continue")

    def __init__(self, pseudo: list, headers: Fields, content_length: int | None,
                 expect_continue: bool) -> None:
        self.method, self.scheme, self.authority, self.path, self.protocol = pseudo
        self.headers = headers
        self.content_length = content_length
        self.expect_continue = expect_continue


def request_parts(fields: Fields) -> RequestParts:
    pseudo: list = [None, None, None, None, None]
    regular: Fields = []
    append = regular.append
    cookies: list[bytes] | None = None
    cl = host = None
    expect = False
    in_pseudo = True
    for field in fields:
        name = field[0]
        if name[0] == 58:  # ':'
            slot = _REQUEST_PSEUDO.get(name)
            if slot is None:
                raise Malformed(f"pseudo-header {name!r} in a request")
            if not in_pseudo:
                raise Malformed(f"pseudo-header {name!r} after a regular field")
            if pseudo[slot] is not None:
                raise Malformed(f"duplicate {name!r}")
            pseudo[slot] = field[1]
            continue
        in_pseudo = False
        if name in _SPECIAL:
            value = field[1]
            if name == b"cookie":
                if cookies is None:
                    cookies = [value]
                else:
                    cookies.append(value)
                continue
            if name == b"content-length":
                cl = _content_length(value, cl)
            elif name == b"te":
                if value.lower() != b"trailers":
                    raise Malformed(f"te: {value!r} (only 'trailers' is allowed)")
            elif name == b"host":
                if host is not None:
                    raise Malformed("more than one host field")
                host = value
            elif name == b"expect":
                expect = value.lower() == b"100-continue"
            else:
                raise Malformed(f"connection-specific field {name!r}")
        append(field)
    method, scheme, authority, path, protocol = pseudo
    if method is None:
        raise Malformed("no :method")
    if method == b"CONNECT" and protocol is None:
        if scheme is not None or path is not None:
            raise Malformed("CONNECT with :scheme or :path")
        if not authority:
            raise Malformed("CONNECT without :authority")
    else:
        if protocol is not None and method != b"CONNECT":
            raise Malformed(":protocol without CONNECT")
        if scheme is None:
            raise Malformed("no :scheme")
        if not path:
            raise Malformed("no :path, or an empty one")
        if scheme in _HTTP_SCHEMES and authority is None and host is None:
            raise Malformed("neither :authority nor host")
    if authority is not None and host is not None and authority != host:
        raise Malformed(":authority and host differ")
    if cookies is not None:
        append((b"cookie", b"; ".join(cookies)))
    return RequestParts(pseudo, regular, cl, expect)


def response_parts(fields: Fields) -> tuple[int, Fields, int | None]:
    """(status, regular fields, content-length)."""
    status = None
    regular: Fields = []
    append = regular.append
    cookies: list[bytes] | None = None
    cl = None
    in_pseudo = True
    for field in fields:
        name = field[0]
        if name[0] == 58:
            if name != b":status":
                raise Malformed(f"pseudo-header {name!r} in a response")
            if not in_pseudo:
                raise Malformed(":status after a regular field")
            if status is not None:
                raise Malformed("duplicate :status")
            status = field[1]
            continue
        in_pseudo = False
        if name in _SPECIAL:
            value = field[1]
            if name == b"cookie":
                if cookies is None:
                    cookies = [value]
                else:
                    cookies.append(value)
                continue
            if name == b"content-length":
                cl = _content_length(value, cl)
            elif name == b"te":
                if value.lower() != b"trailers":
                    raise Malformed(f"te: {value!r} (only 'trailers' is allowed)")
            elif name in _CONNECTION_SPECIFIC:
                raise Malformed(f"connection-specific field {name!r}")
        append(field)
    if status is None or len(status) != 3 or not status.isdigit():
        raise Malformed(f"missing or invalid :status {status!r}")
    if cookies is not None:
        append((b"cookie", b"; ".join(cookies)))
    return int(status), regular, cl


def check_trailers(fields: Fields) -> None:
    for field in fields:
        name = field[0]
        if name[0] == 58:
            raise Malformed(f"pseudo-header {name!r} in trailers")
        if name in _CONNECTION_SPECIFIC:
            raise Malformed(f"connection-specific field {name!r} in trailers")
        if name == b"te" and field[1].lower() != b"trailers":
            raise Malformed("te in trailers")
