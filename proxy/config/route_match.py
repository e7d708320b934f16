"""RouteMatch → one compiled predicate over a `RequestView`, as Envoy matches routes.

Path first (prefix, exact path, RE2 regex and path_separated_prefix, all on the path
without query or fragment; `case_sensitive` for all but regex), then headers (pseudo-headers
`:authority`, `:method`, `:path`, `:scheme` included), query parameters (first value,
not percent-decoded, as Envoy's parseQueryString), gRPC content type, and the runtime
fraction against the request's random value. Decided at compile time; nothing re-parsed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from envoy.config.route.v3 import route_components_pb2 as rc

from isthmus.proxy.config.common import Fraction, runtime_fraction, wrapped
from isthmus.proxy.config.matchers import HeaderMatch, StringMatch, header_matcher, regex_matcher, string_matcher
from isthmus.proxy.config.errors import Fields, Where

ROUTE_MATCH = Fields(rc.RouteMatch, {
    "prefix", "path", "safe_regex", "path_separated_prefix", "case_sensitive", "runtime_fraction", "headers",
    "query_parameters", "grpc",
})
QUERY_MATCHER = Fields(rc.QueryParameterMatcher, {"name", "string_match", "present_match"})
GRPC_MATCH = Fields(rc.RouteMatch.GrpcRouteMatchOptions, ())


class RequestView:
    """What route matching reads from one request. `get_header(lower_name)` returns the
    header's value (multiple values joined with ","), or None when absent."""

    __slots__ = ("authority", "path", "method", "query", "scheme", "get_header", "random_value", "_params")

    def __init__(self, authority: str, path: str, get_header: Callable[[str], str | None], method: str = "GET",
                 query: str = "", scheme: str = "http", random_value: int = 0) -> None:
        self.authority = authority
        self.path = path
        self.method = method
        self.query = query
        self.scheme = scheme
        self.get_header = get_header
        self.random_value = random_value
        self._params: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        if name[:1] == ":":
            if name == ":authority":
                return self.authority
            if name == ":method":
                return self.method
            if name == ":path":
                return f"{self.path}?{self.query}" if self.query else self.path
            if name == ":scheme":
                return self.scheme
            return None
        return self.get_header(name)

    @property
    def params(self) -> dict[str, str]:
        if self._params is None:
            out: dict[str, str] = {}
            for part in self.query.split("&") if self.query else ():
                key, _, value = part.partition("=")
                out.setdefault(key, value)
            self._params = out
        return self._params


@dataclass(frozen=True, slots=True)
class QueryMatch:
    name: str
    match: StringMatch | None  # None: presence only

    def matches(self, params: dict[str, str]) -> bool:
        value = params.get(self.name)
        if value is None:
            return False
        return self.match is None or self.match.matches(value)


@dataclass(frozen=True, slots=True)
class RouteMatchConfig:
    kind: str  # prefix | path | regex | path_separated_prefix
    value: str
    case_sensitive: bool = True
    headers: tuple[HeaderMatch, ...] = ()
    query_parameters: tuple[QueryMatch, ...] = ()
    grpc: bool = False
    runtime_fraction: Fraction | None = None
    matches: Callable[[RequestView], bool] = field(default=bool, compare=False, repr=False)


def is_grpc(content_type: str | None) -> bool:
    """Envoy's gRPC request check: application/grpc, optionally followed by + or ;."""
    if not content_type or not content_type.startswith("application/grpc"):
        return False
    return len(content_type) == 16 or content_type[16] in "+;"


def _path_predicate(msg: rc.RouteMatch, where: Where, sensitive: bool) -> tuple[str, str, Callable[[RequestView], bool]]:
    which = msg.WhichOneof("path_specifier")
    if which == "prefix":
        p = msg.prefix
        if sensitive or p in ("", "/"):
            return "prefix", p, lambda r: r.path.startswith(p)
        low = p.lower()
        return "prefix", p, lambda r: r.path.lower().startswith(low)
    if which == "path":
        p = msg.path
        if sensitive:
            return "path", p, lambda r: r.path == p
        low = p.lower()
        return "path", p, lambda r: r.path.lower() == low
    if which == "safe_regex":
        rx = regex_matcher(msg.safe_regex, where.at("safe_regex"))
        return "regex", msg.safe_regex.regex, lambda r: rx.fullmatch(r.path) is not None
    if which == "path_separated_prefix":
        p = msg.path_separated_prefix
        if not p.startswith("/") or p.endswith("/") or "?" in p or "#" in p:
            raise where.at(which).invalid(f"path_separated_prefix {p!r} must start with / and not end with /")
        if sensitive:
            return which, p, lambda r: r.path == p or r.path.startswith(p + "/")
        low = p.lower()
        return which, p, lambda r: (lp := r.path.lower()) == low or lp.startswith(low + "/")
    raise where.invalid("a route match needs prefix, path, safe_regex or path_separated_prefix")


def _query(msg: rc.QueryParameterMatcher, where: Where) -> QueryMatch:
    QUERY_MATCHER.check(msg, where)
    if msg.HasField("string_match"):
        return QueryMatch(msg.name, string_matcher(msg.string_match, where.at("string_match")))
    return QueryMatch(msg.name, None)


def compile_route_match(msg: rc.RouteMatch, where: Where) -> RouteMatchConfig:
    ROUTE_MATCH.check(msg, where)
    sensitive = wrapped(msg, "case_sensitive", True)
    kind, value, path_ok = _path_predicate(msg, where, sensitive)
    headers = tuple(header_matcher(h, where.at("headers").idx(i)) for i, h in enumerate(msg.headers))
    queries = tuple(_query(q, where.at("query_parameters").idx(i)) for i, q in enumerate(msg.query_parameters))
    grpc = msg.HasField("grpc")
    if grpc:
        GRPC_MATCH.check(msg.grpc, where.at("grpc"))
    fraction = runtime_fraction(msg.runtime_fraction, where.at("runtime_fraction")) if msg.HasField("runtime_fraction") else None

    if not headers and not queries and not grpc and fraction is None:
        matches = path_ok
    else:
        def matches(r: RequestView) -> bool:
            if not path_ok(r):
                return False
            for h in headers:
                if not h.matches(r.header(h.name)):
                    return False
            if queries:
                params = r.params
                for q in queries:
                    if not q.matches(params):
                        return False
            if grpc and not is_grpc(r.get_header("content-type")):
                return False
            return fraction is None or fraction.hits(r.random_value)
    return RouteMatchConfig(kind, value, sensitive, headers, queries, grpc, fraction, matches)

