"""Request hash keys for consistent hashing, computed as Envoy computes them.

Contract: the hash function is XXH64 (seed 0), written here in pure Python and checked
against the reference vectors, because it is what Envoy uses for hash policies, ring
entries and Maglev permutations: for the same hosts and request, an Isthmus sidecar
and an Envoy sidecar pick the same upstream, and the choice is stable across restarts
(unlike Python's salted `hash()`). `request_hash(policies, ...)` takes plain values
(headers, cookies, source IP, query) and returns the 64-bit hash plus the `Set-Cookie`
to add when a cookie policy with a TTL generated the cookie.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

__all__ = [
    "xxh64",
    "hash_str",
    "HeaderHash",
    "CookieHash",
    "SourceIpHash",
    "QueryParameterHash",
    "HashPolicy",
    "SetCookie",
    "HashResult",
    "request_hash",
    "parse_cookies",
    "parse_query",
]

_M = 0xFFFFFFFFFFFFFFFF
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _M
    acc = ((acc << 31) | (acc >> 33)) & _M
    return (acc * _P1) & _M


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 of `data` (the 64-bit xxHash, little-endian lanes) as an unsigned int."""
    n = len(data)
    i = 0
    fb = int.from_bytes
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _M
        v2 = (seed + _P2) & _M
        v3 = seed & _M
        v4 = (seed - _P1) & _M
        limit = n - 32
        while i <= limit:
            v1 = _round(v1, fb(data[i:i + 8], "little"))
            v2 = _round(v2, fb(data[i + 8:i + 16], "little"))
            v3 = _round(v3, fb(data[i + 16:i + 24], "little"))
            v4 = _round(v4, fb(data[i + 24:i + 32], "little"))
            i += 32
        h = (((v1 << 1) | (v1 >> 63)) + ((v2 << 7) | (v2 >> 57))
             + ((v3 << 12) | (v3 >> 52)) + ((v4 << 18) | (v4 >> 46))) & _M
        for v in (v1, v2, v3, v4):
            h = ((h ^ _round(0, v)) * _P1 + _P4) & _M
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 8 <= n:
        h ^= _round(0, fb(data[i:i + 8], "little"))
        h = ((((h << 27) | (h >> 37)) & _M) * _P1 + _P4) & _M
        i += 8
    if i + 4 <= n:
        h ^= (fb(data[i:i + 4], "little") * _P1) & _M
        h = ((((h << 23) | (h >> 41)) & _M) * _P2 + _P3) & _M
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _M
        h = ((((h << 11) | (h >> 53)) & _M) * _P1) & _M
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return h


@functools.lru_cache(maxsize=8192)
def hash_str(value: str, seed: int = 0) -> int:
    """XXH64 of the UTF-8 bytes of `value`; cached, since keys (users, sessions) repeat."""
    return xxh64(value.encode("utf-8", "surrogatepass"), seed)


def _hash_values(values: Sequence[str]) -> int:
    """Envoy's `xxHash64(span)`: each value hashed with the previous result as seed."""
    h = 0
    for v in values:
        h = hash_str(v, h)
    return h


# -- hash policies (route.v3.RouteAction.HashPolicy) ------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class HeaderHash:
    """Hash the named request header (lower-case name); all its values, sorted."""

    name: str
    terminal: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class CookieHash:
    """Hash a cookie; with `ttl` set, generate the cookie when the request lacks it.

    `ttl` is seconds: None → never generate; 0 → a session cookie (no Max-Age).
    """

    name: str
    ttl: int | None = None
    path: str = ""
    attributes: tuple[tuple[str, str], ...] = ()
    terminal: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class SourceIpHash:
    """Hash the downstream peer's IP address (without the port)."""

    terminal: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class QueryParameterHash:
    """Hash the first value of the named query parameter."""

    name: str
    terminal: bool = False


HashPolicy = HeaderHash | CookieHash | SourceIpHash | QueryParameterHash


@dataclasses.dataclass(frozen=True, slots=True)
class SetCookie:
    """A cookie the router must add to the response (`Set-Cookie` header value)."""

    name: str
    value: str
    max_age: int
    path: str = ""
    attributes: tuple[tuple[str, str], ...] = ()

    def header_value(self) -> str:
        """Formatted as Envoy formats it: quoted value, Max-Age, Path, attributes, HttpOnly."""
        parts = [f'{self.name}="{self.value}"']
        if self.max_age:
            parts.append(f"Max-Age={self.max_age}")
        if self.path:
            parts.append(f"Path={self.path}")
        parts.extend(f"{k}={v}" if v else k for k, v in self.attributes)
        parts.append("HttpOnly")
        return "; ".join(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class HashResult:
    hash: int | None
    set_cookie: SetCookie | None = None


_NO_HASH = HashResult(None)


def request_hash(
    policies: Sequence[HashPolicy],
    *,
    headers: Mapping[str, str | Sequence[str]] | None = None,
    cookies: Mapping[str, str] | None = None,
    source_ip: str | None = None,
    query: Mapping[str, str] | None = None,
    connection_id: str = "",
) -> HashResult:
    """Evaluate a route's hash policies in order, combining hashes as Envoy does.

    Each produced hash is XORed into the running hash rotated left by one bit; a
    `terminal` policy that produced a hash stops the evaluation. `headers` maps
    lower-case names to a value or a list of values; `cookies` and `query` map names
    to their first value (see `parse_cookies`, `parse_query`). `connection_id` (e.g.
    remote + local address of the downstream connection) seeds a generated cookie, so
    concurrent requests on one connection get the same cookie.
    """
    result: int | None = None
    set_cookie: SetCookie | None = None
    for policy in policies:
        new: int | None = None
        if isinstance(policy, HeaderHash):
            raw = headers.get(policy.name) if headers else None
            if raw:
                values = [raw] if isinstance(raw, str) else sorted(raw)
                new = _hash_values(values)
        elif isinstance(policy, CookieHash):
            value = cookies.get(policy.name, "") if cookies else ""
            if not value and policy.ttl is not None:
                value = format(hash_str(connection_id), "016x")
                set_cookie = SetCookie(policy.name, value, policy.ttl, policy.path, policy.attributes)
            if value:
                new = hash_str(value)
        elif isinstance(policy, SourceIpHash):
            if source_ip:
                new = hash_str(source_ip)
        elif isinstance(policy, QueryParameterHash):
            value = query.get(policy.name) if query else None
            if value is not None:
                new = hash_str(value)
        else:  # pragma: no cover - the config layer builds only the four kinds
            raise TypeError(f"unknown hash policy {policy!r}")
        if new is not None:
            rotated = (((result << 1) | (result >> 63)) & _M) if result is not None else 0
            result = rotated ^ new
        if policy.terminal and result is not None:
            break
    if result is None and set_cookie is None:
        return _NO_HASH
    return HashResult(result, set_cookie)


def parse_cookies(cookie_headers: str | Sequence[str] | None) -> dict[str, str]:
    """`Cookie` header value(s) → {name: first value}, surrounding quotes removed."""
    if not cookie_headers:
        return {}
    if isinstance(cookie_headers, str):
        cookie_headers = (cookie_headers,)
    out: dict[str, str] = {}
    for header in cookie_headers:
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if not sep or not name or name in out:
                continue
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            out[name] = value
    return out


def parse_query(path: str) -> dict[str, str]:
    """`/p?a=1&b=2` → {name: first decoded value}."""
    _, sep, qs = path.partition("?")
    if not sep:
        return {}
    out: dict[str, str] = {}
    for name, value in parse_qsl(qs.partition("#")[0], keep_blank_values=True):
        out.setdefault(name, value)
    return out
