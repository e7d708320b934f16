"""CEL's function library as Kubernetes offers it to CRD rules, and its runtime types.

Contract: `FUNCTIONS[name](name, is_method, args)` returns a CEL value or raises
`CelError` with a short reason. Covers the standard functions (size, contains,
startsWith, endsWith, matches, int, double, string, bool, duration, dyn), the
Kubernetes strings extension subset (substring, charAt, indexOf, lowerAscii,
upperAscii, trim, split, join) and the Kubernetes URL library (url, isURL, getScheme,
getHost, getHostname, getPort, getEscapedPath, getQuery). Regexes use RE2, as CEL does.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable
from urllib.parse import parse_qs

import re2

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class CelError(Exception):
    """A rule could not be evaluated (no such key, bad argument, overflow, ...)."""


@dataclass(frozen=True, order=True)
class Duration:
    """A CEL `google.protobuf.Duration`, held as nanoseconds."""

    nanos: int

    @classmethod
    def checked(cls, nanos: int) -> "Duration":
        if not INT64_MIN <= nanos <= INT64_MAX:
            raise CelError("duration out of range")
        return cls(nanos)

    def __str__(self) -> str:  # as cel-go prints it: seconds with a fraction, "1.5s"
        whole, frac = divmod(abs(self.nanos), 10**9)
        text = f"{whole}.{frac:09d}".rstrip("0").rstrip(".")
        return f"{'-' if self.nanos < 0 else ''}{text}s"


@dataclass(frozen=True)
class Url:
    """A parsed URL as Go's `url.ParseRequestURI` sees it (Kubernetes' `url()`)."""

    scheme: str
    host: str
    path: str
    query: str
    opaque: str = ""

    @property
    def hostname(self) -> str:
        if self.host.startswith("["):
            return self.host[1:self.host.index("]")]
        return self.host.rpartition(":")[0] if ":" in self.host else self.host

    @property
    def port(self) -> str:
        tail = self.host[self.host.index("]") + 1:] if self.host.startswith("[") else self.host
        return tail.rpartition(":")[2] if ":" in tail else ""


def type_name(value: Any) -> str:
    if value is None:
        return "null_type"
    for py, name in ((bool, "bool"), (int, "int"), (float, "double"), (str, "string"),
                     (bytes, "bytes"), (list, "list"), (tuple, "list"), (dict, "map"),
                     (Duration, "google.protobuf.Duration"), (Url, "kubernetes.URL")):
        if isinstance(value, py):
            return name
    return type(value).__name__


def check_int(n: int) -> int:
    if not INT64_MIN <= n <= INT64_MAX:
        raise CelError("integer overflow")
    return n


# --- Go duration strings: "300ms", "-1.5h", "2h45m", "1µs"; "0" needs no unit ---------
_UNIT_NANOS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
               "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_duration(text: str) -> Duration:
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return Duration(0)
    if not body:
        raise CelError(f"invalid duration {text!r}")
    total, pos = Fraction(0), 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise CelError(f"invalid duration {text!r}")
        if unit not in _UNIT_NANOS:
            reason = "missing unit" if not unit else f"unknown unit {unit!r}"
            raise CelError(f"invalid duration {text!r}: {reason} (use ns, us, ms, s, m or h)")
        number = int(whole or "0") + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        total += number * _UNIT_NANOS[unit]
        pos = m.end()
    nanos = int(total) * (-1 if text.startswith("-") else 1)
    if not INT64_MIN <= nanos <= INT64_MAX:
        raise CelError(f"invalid duration {text!r}: out of range")
    return Duration(nanos)


# --- URLs the way Go's url.ParseRequestURI accepts them ------------------------------
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_CHARS = re.compile(r"[A-Za-z0-9.\-_~!$&'()*+,;=%]*")


def parse_url(text: str) -> Url:
    if not text:
        raise CelError("URL is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise CelError(f"URL {text!r} contains a control character")
    m = _SCHEME.match(text)
    if text.startswith(":"):
        raise CelError(f"URL {text!r} is missing a protocol scheme")
    scheme, rest = (m.group(1).lower(), text[m.end():]) if m else ("", text)
    if rest.endswith("?") and rest.count("?") == 1:
        rest, query = rest[:-1], ""
    else:
        rest, _, query = rest.partition("?")
    if not rest.startswith("/"):
        if scheme:
            return Url(scheme, "", "", query, opaque=rest)
        raise CelError(f"{text!r} is not an absolute URL or absolute path")
    host = ""
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        host = authority.rpartition("@")[2]
        _check_host(host, text)
    if _BAD_ESCAPE.search(rest) or _BAD_ESCAPE.search(host):
        raise CelError(f"URL {text!r} has an invalid %-escape")
    return Url(scheme, host, rest, query)


def _check_host(host: str, text: str) -> None:
    if host.startswith("["):
        close = host.find("]")
        if close < 0:
            raise CelError(f"URL {text!r}: missing ']' in host")
        port_part = host[close + 1:]
        if port_part and not re.fullmatch(r":\d*", port_part):
            raise CelError(f"URL {text!r}: invalid port {port_part!r} after host")
        return
    name, colon, port = host.rpartition(":") if ":" in host else (host, "", "")
    if colon and not port.isdigit() and port != "":
        raise CelError(f"URL {text!r}: invalid port {':' + port!r} after host")
    if not _HOST_CHARS.fullmatch(name):
        raise CelError(f"URL {text!r}: invalid character in host name")


# --- the function table ---------------------------------------------------------------
Fn = Callable[[str, bool, list[Any]], Any]
FUNCTIONS: dict[str, Fn] = {}


def _overload_error(name: str, method: bool, args: list[Any]) -> CelError:
    types = [type_name(a) for a in args]
    if method and types:
        return CelError(f"no such overload: {types[0]}.{name}({', '.join(types[1:])})")
    return CelError(f"no such overload: {name}({', '.join(types)})")


def _define(name: str, *signatures: tuple[bool | None, tuple[str, ...]]) -> Callable[[Callable[..., Any]], Any]:
    """Register `fn(*args)` for `name`; each signature is (method?, argument types)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(fname: str, method: bool, args: list[Any]) -> Any:
            types = tuple(type_name(a) for a in args)
            for want_method, want in signatures:
                if (want_method is None or want_method == method) and len(want) == len(types) and all(
                    w in ("dyn", t) for w, t in zip(want, types)
                ):
                    return fn(*args)
            raise _overload_error(fname, method, args)

        FUNCTIONS[name] = call
        return fn

    return register


_ANY = None  # callable as f(x) or x.f()


@_define("size", (_ANY, ("string",)), (_ANY, ("bytes",)), (_ANY, ("list",)), (_ANY, ("map",)))
def _size(x: Any) -> int:
    return len(x)


@_define("contains", (True, ("string", "string")))
def _contains(s: str, sub: str) -> bool:
    return sub in s


@_define("startsWith", (True, ("string", "string")))
def _starts(s: str, prefix: str) -> bool:
    return s.startswith(prefix)


@_define("endsWith", (True, ("string", "string")))
def _ends(s: str, suffix: str) -> bool:
    return s.endswith(suffix)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern)
    except Exception as exc:  # re2 raises its own error type
        raise CelError(f"invalid regular expression {pattern!r}: {exc}") from None


@_define("matches", (_ANY, ("string", "string")))
def _matches(s: str, pattern: str) -> bool:
    return _regex(pattern).search(s) is not None


@_define("substring", (True, ("string", "int")), (True, ("string", "int", "int")))
def _substring(s: str, start: int, end: int | None = None) -> str:
    end = len(s) if end is None else end
    if start < 0 or end > len(s) or start > end:
        raise CelError(f"substring({start}, {end}) out of range for a string of length {len(s)}")
    return s[start:end]


@_define("charAt", (True, ("string", "int")))
def _char_at(s: str, i: int) -> str:
    if not 0 <= i <= len(s):
        raise CelError(f"charAt({i}) out of range")
    return s[i:i + 1]


@_define("indexOf", (True, ("string", "string")))
def _index_of(s: str, sub: str) -> int:
    return s.find(sub)


@_define("lowerAscii", (True, ("string",)))
def _lower(s: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in s)


@_define("upperAscii", (True, ("string",)))
def _upper(s: str) -> str:
    return "".join(c.upper() if c.isascii() else c for c in s)


@_define("trim", (True, ("string",)))
def _trim(s: str) -> str:
    return s.strip()


@_define("split", (True, ("string", "string")))
def _split(s: str, sep: str) -> list[str]:
    return list(s) if sep == "" else s.split(sep)


@_define("join", (True, ("list",)), (True, ("list", "string")))
def _join(items: list[Any], sep: str = "") -> str:
    if not all(isinstance(i, str) for i in items):
        raise CelError("join() needs a list of strings")
    return sep.join(items)


_INT_TEXT = re.compile(r"[+-]?\d+")


@_define("int", (False, ("int",)), (False, ("double",)), (False, ("string",)))
def _int(x: Any) -> int:
    if isinstance(x, str):
        if not _INT_TEXT.fullmatch(x):
            raise CelError(f"cannot convert {x!r} to int")
        return check_int(int(x))
    if isinstance(x, float):
        if not math.isfinite(x) or not INT64_MIN <= x < 2.0**63:
            raise CelError(f"cannot convert {x} to int: out of range")
        return int(x)
    return x


@_define("double", (False, ("int",)), (False, ("double",)), (False, ("string",)))
def _double(x: Any) -> float:
    try:
        return float(x)
    except ValueError:
        raise CelError(f"cannot convert {x!r} to double") from None


@_define("string", *((False, (t,)) for t in ("string", "int", "double", "bool", "bytes",
                                               "google.protobuf.Duration")))
def _string(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, bytes):
        try:
            return x.decode("utf-8")
        except UnicodeDecodeError:
            raise CelError("bytes are not valid UTF-8") from None
    if isinstance(x, float):
        return repr(x).removesuffix(".0")
    return str(x)


@_define("bool", (False, ("bool",)), (False, ("string",)))
def _to_bool(x: Any) -> bool:
    if isinstance(x, bool):
        return x
    if x in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if x in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise CelError(f"cannot convert {x!r} to bool")


@_define("dyn", (False, ("dyn",)))
def _dyn(x: Any) -> Any:
    return x


@_define("duration", (False, ("string",)), (False, ("google.protobuf.Duration",)))
def _duration(x: Any) -> Duration:
    return x if isinstance(x, Duration) else parse_duration(x)


for _name, _unit in (("getHours", 3600 * 10**9), ("getMinutes", 60 * 10**9),
                     ("getSeconds", 10**9), ("getMilliseconds", 10**6)):
    _define(_name, (True, ("google.protobuf.Duration",)))(
        lambda d, unit=_unit: int(d.nanos / unit))


@_define("url", (False, ("string",)))
def _url(text: str) -> Url:
    return parse_url(text)


@_define("isURL", (False, ("string",)))
def _is_url(text: str) -> bool:
    try:
        parse_url(text)
    except CelError:
        return False
    return True


for _name, _getter in (("getScheme", lambda u: u.scheme), ("getHost", lambda u: u.host),
                       ("getHostname", lambda u: u.hostname), ("getPort", lambda u: u.port),
                       ("getEscapedPath", lambda u: u.path),
                       ("getQuery", lambda u: parse_qs(u.query, keep_blank_values=True))):
    _define(_name, (True, ("kubernetes.URL",)))(_getter)
