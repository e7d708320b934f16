"""Envoy's route selection over a RouteConfiguration, for tests that assert traffic.

`match_route(rc, authority, path, headers, method)` → `(virtual_host_name, route)` or
None (Envoy's 404 NR). Virtual host: exact domain, then the longest suffix wildcard
(`*.example.com`), then the longest prefix wildcard (`example.*`), then `*`; the
authority's port is stripped first when `ignore_port_in_host_matching` is set. Route:
the first whose path (prefix / exact path / RE2 regex / path-separated prefix, with
case_sensitive), headers (incl. `:method`, `:authority`, `:scheme`, `:path`) and query
parameters all match. `destinations(route)` reads where a matched route sends traffic.
"""
from __future__ import annotations

import functools
from typing import Mapping
from urllib.parse import parse_qsl

import re2

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.type.matcher.v3 import string_pb2


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str):
    return re2.compile(pattern)


def _strip_port(authority: str) -> str:
    if authority.startswith("["):  # [v6]:port
        end = authority.find("]")
        return authority[: end + 1] if end != -1 else authority
    host, sep, port = authority.rpartition(":")
    return host if sep and port.isdigit() else authority


def select_virtual_host(config: route_pb2.RouteConfiguration, authority: str) -> rc.VirtualHost | None:
    host = authority.lower()
    if config.ignore_port_in_host_matching:
        host = _strip_port(host)
    exact: rc.VirtualHost | None = None
    suffix: tuple[int, rc.VirtualHost] | None = None
    prefix: tuple[int, rc.VirtualHost] | None = None
    default: rc.VirtualHost | None = None
    for vh in config.virtual_hosts:
        for d in (x.lower() for x in vh.domains):
            if d == "*":
                default = default or vh
            elif d.startswith("*"):
                rest = d[1:]
                # the wildcard must stand for at least one character
                if len(host) > len(rest) and host.endswith(rest) and (suffix is None or len(rest) > suffix[0]):
                    suffix = (len(rest), vh)
            elif d.endswith("*"):
                rest = d[:-1]
                if len(host) > len(rest) and host.startswith(rest) and (prefix is None or len(rest) > prefix[0]):
                    prefix = (len(rest), vh)
            elif d == host and exact is None:
                exact = vh
    if exact is not None:
        return exact
    if suffix is not None:
        return suffix[1]
    if prefix is not None:
        return prefix[1]
    return default


def string_matches(m: string_pb2.StringMatcher, value: str) -> bool:
    which = m.WhichOneof("match_pattern")
    if which == "safe_regex":
        return _regex(m.safe_regex.regex).fullmatch(value) is not None
    v, ignore = (value.lower(), True) if m.ignore_case else (value, False)
    target = getattr(m, which) if which else ""
    if ignore:
        target = target.lower()
    if which == "exact":
        return v == target
    if which == "prefix":
        return v.startswith(target)
    if which == "suffix":
        return v.endswith(target)
    if which == "contains":
        return target in v
    return False


def _header_matches(h: rc.HeaderMatcher, headers: Mapping[str, str]) -> bool:
    value = headers.get(h.name.lower())
    which = h.WhichOneof("header_match_specifier")
    if value is None and h.treat_missing_header_as_empty:
        value = ""
    if which == "present_match":
        result = (value is not None) == h.present_match
    elif value is None:
        return False  # a missing header never matches, inverted or not (unless treated as empty)
    elif which == "string_match":
        result = string_matches(h.string_match, value)
    elif which == "exact_match":
        result = value == h.exact_match
    elif which == "prefix_match":
        result = value.startswith(h.prefix_match)
    elif which == "safe_regex_match":
        result = _regex(h.safe_regex_match.regex).fullmatch(value) is not None
    else:
        result = True  # no specifier: presence
    return result != h.invert_match


def _path_matches(m: rc.RouteMatch, path: str) -> bool:
    which = m.WhichOneof("path_specifier")
    sensitive = not m.HasField("case_sensitive") or m.case_sensitive.value
    bare = path.split("?", 1)[0].split("#", 1)[0]
    if which == "safe_regex":
        return _regex(m.safe_regex.regex).fullmatch(bare) is not None
    fold = (lambda s: s) if sensitive else str.lower
    if which == "prefix":
        return fold(path).startswith(fold(m.prefix))
    if which == "path":
        return fold(bare) == fold(m.path)
    if which == "path_separated_prefix":
        p = fold(m.path_separated_prefix)
        return fold(bare) == p or fold(bare).startswith(p + "/")
    return False


def _query_matches(q: rc.QueryParameterMatcher, params: Mapping[str, str]) -> bool:
    value = params.get(q.name)
    if q.WhichOneof("query_parameter_match_specifier") == "present_match":
        return value is not None
    if value is None:
        return False
    return string_matches(q.string_match, value) if q.HasField("string_match") else True


def route_matches(m: rc.RouteMatch, path: str, headers: Mapping[str, str]) -> bool:
    if not _path_matches(m, path):
        return False
    if not all(_header_matches(h, headers) for h in m.headers):
        return False
    query = path.split("?", 1)[1] if "?" in path else ""
    params = dict(parse_qsl(query, keep_blank_values=True))
    return all(_query_matches(q, params) for q in m.query_parameters)


def match_route(
    config: route_pb2.RouteConfiguration,
    authority: str,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    scheme: str = "http",
) -> tuple[str, rc.Route] | None:
    """Where Envoy sends this request: (virtual host name, route), or None for 404 NR."""
    vh = select_virtual_host(config, authority)
    if vh is None:
        return None
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    hdrs.update({":authority": authority, ":method": method, ":path": path, ":scheme": scheme})
    for route in vh.routes:
        if route_matches(route.match, path, hdrs):
            return vh.name, route
    return None


def destinations(route: rc.Route) -> list[tuple[str, int]]:
    """(cluster, weight) pairs a matched route sends to; [] for redirects and direct responses."""
    if not route.HasField("route"):
        return []
    if route.route.cluster:
        return [(route.route.cluster, 100)]
    return [(c.name, c.weight.value) for c in route.route.weighted_clusters.clusters]
