"""Header-list helpers over ``list[tuple[bytes, bytes]]`` (lowercase names): lookup,
hop-by-hop removal as a proxy must do it (RFC 9110 section 7.6.1; Envoy keeps
``upgrade`` for WebSocket and ``te: trailers``), authority validation, lowercasing.
Pure functions; nothing here allocates unless it has to.
"""
from __future__ import annotations

from .events import Headers

# Headers that describe one connection, never forwarded as such.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
    b"upgrade", b"te", b"http2-settings",
})

# Common names as received in the wild → their lowercase constant (shared objects).
_COMMON = (
    b"Host", b"User-Agent", b"Accept", b"Accept-Encoding", b"Accept-Language",
    b"Content-Type", b"Content-Length", b"Connection", b"Cookie", b"Authorization",
    b"Cache-Control", b"Transfer-Encoding", b"Upgrade", b"Date", b"Server",
    b"Location", b"Referer", b"Origin", b"X-Request-Id", b"X-Forwarded-For",
    b"X-Forwarded-Proto", b"Set-Cookie", b"Expect", b"Keep-Alive", b"TE",
)
_LOWER = {name: name.lower() for name in _COMMON}
_LOWER.update({low: low for low in _LOWER.values()})

# RFC 3986 authority characters: unreserved / sub-delims / ":" "@" "[" "]" "%"
# (``authority.translate(None, AUTHORITY_CHARS)`` leaves only the bad ones).
AUTHORITY_CHARS = (b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                   b"-._~!$&'()*+,;=:@[]%")


def lower_name(name: bytes) -> bytes:
    """Lowercase a header name, returning a shared constant for common names."""
    return _LOWER.get(name) or name.lower()


def get_header(headers: Headers, name: bytes, default: bytes | None = None) -> bytes | None:
    """The first value of ``name`` (lowercase), or ``default``."""
    for key, value in headers:
        if key == name:
            return value
    return default


def get_all(headers: Headers, name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]


def header_tokens(value: bytes) -> list[bytes]:
    """Comma-separated tokens of a list-valued header, lowercased and stripped."""
    return [token.strip().lower() for token in value.split(b",") if token.strip()]


def valid_authority(authority: bytes) -> bool:
    """True for a syntactically plausible ``host[:port]`` (no spaces, slashes, CTLs)."""
    return bool(authority) and not authority.translate(None, AUTHORITY_CHARS)


def split_absolute_form(url: bytes) -> tuple[bytes, bytes, bytes] | None:
    """``http://user@host:port/p?q#f`` → (scheme, authority, origin-form target),
    userinfo and fragment dropped; None unless the scheme is http or https. A proxy
    ignores the Host header for such requests (RFC 9112 section 3.2.2)."""
    scheme, sep, rest = url.partition(b"://")
    scheme = scheme.lower()
    if not sep or scheme not in (b"http", b"https"):
        return None
    end = len(rest)
    for delim in (b"/", b"?", b"#"):
        at = rest.find(delim)
        if 0 <= at < end:
            end = at
    authority = rest[:end].rpartition(b"@")[2]
    path = rest[end:].partition(b"#")[0]
    if not path.startswith(b"/"):
        path = b"/" + path
    return scheme, authority, path


def strip_hop_by_hop(headers: Headers, websocket: bool = False) -> Headers:
    """A copy of ``headers`` without hop-by-hop headers and the headers that
    ``Connection`` nominates. ``te`` survives only as ``te: trailers`` (gRPC needs
    it); ``upgrade`` survives when ``websocket`` (the upgrade is being proxied)."""
    nominated: set[bytes] = set()
    for key, value in headers:
        if key == b"connection":
            nominated.update(header_tokens(value))
    nominated -= {b"close", b"keep-alive", b"upgrade", b"te"}
    out: Headers = []
    for key, value in headers:
        if key in HOP_BY_HOP:
            if key == b"te":
                if b"trailers" in header_tokens(value):
                    out.append((b"te", b"trailers"))
                continue
            if not (websocket and key == b"upgrade"):
                continue
        elif key in nominated:
            continue
        out.append((key, value))
    return out


def join_cookies(headers: Headers) -> Headers:
    """HTTP/2 may split ``cookie`` into crumbs; HTTP/1 needs one header joined with
    ``"; "`` (RFC 9113 section 8.2.3). Returns ``headers`` itself when there is at
    most one cookie header."""
    crumbs = [value for key, value in headers if key == b"cookie"]
    if len(crumbs) < 2:
        return headers
    out = [(key, value) for key, value in headers if key != b"cookie"]
    out.append((b"cookie", b"; ".join(crumbs)))
    return out
