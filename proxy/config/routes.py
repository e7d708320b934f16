"""RDS: RouteConfiguration → `RouteTable`, with Envoy's virtual-host and route selection.

Virtual host by authority (lower-cased; the port stripped only with
`ignore_port_in_host_matching`, so `reviews:9080` matches only a `reviews:9080`
domain): exact dict hit → longest suffix wildcard (`*.foo`, `*-bar.foo`) → longest
prefix wildcard (`foo.*`) → `*`; a wildcard never matches the empty string. Then the
first route whose compiled predicate matches. Header mutations and per-filter configs
are resolved per route at compile time (route > vhost > route configuration; header
order per `most_specific_header_mutations_wins`), so `RouteTable.match` only dispatches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Union

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from isthmus.proxy.config.common import EMPTY, enum, wrapped
from isthmus.proxy.config.matchers import HeaderMutations, mutations_of
from isthmus.proxy.config.errors import Fields, Where
from isthmus.proxy.config.http_filters import PerFilterConfig, per_filter_config
from isthmus.proxy.config.route_action import (
    ClusterWeightConfig, DirectResponseConfig, MirrorPolicyConfig, RedirectConfig, RetryPolicyConfig,
    RouteActionConfig, direct_response, mirror_policies, redirect, retry_policy, route_action,
)
from isthmus.proxy.config.route_match import RequestView, RouteMatchConfig, compile_route_match

ROUTE_TYPE_URL = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
DEFAULT_MAX_DIRECT_RESPONSE_BODY = 4096

ROUTE_CONFIGURATION = Fields(route_pb2.RouteConfiguration, {
    "name", "virtual_hosts", "internal_only_headers", "response_headers_to_add", "response_headers_to_remove",
    "request_headers_to_add", "request_headers_to_remove", "most_specific_header_mutations_wins",
    "validate_clusters", "max_direct_response_body_size_bytes", "request_mirror_policies",
    "ignore_port_in_host_matching", "vhost_header", "typed_per_filter_config",
}, {"metadata": "not consulted by any isthmus filter"})
VIRTUAL_HOST = Fields(rc.VirtualHost, {
    "name", "domains", "routes", "require_tls", "request_headers_to_add", "request_headers_to_remove",
    "response_headers_to_add", "response_headers_to_remove", "typed_per_filter_config", "include_request_attempt_count",
    "include_attempt_count_in_response", "retry_policy", "include_is_timeout_retry_header",
    "per_request_buffer_limit_bytes", "request_mirror_policies",
}, {"virtual_clusters": "stats only", "metadata": "not consulted by any isthmus filter"})
ROUTE = Fields(rc.Route, {
    "name", "match", "route", "redirect", "direct_response", "decorator", "typed_per_filter_config",
    "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove",
    "per_request_buffer_limit_bytes",
}, {"metadata": "not consulted by any isthmus filter", "stat_prefix": "stats only"})
DECORATOR = Fields(rc.Decorator, {"operation", "propagate"})
REQUIRE_TLS = {rc.VirtualHost.NONE: "none", rc.VirtualHost.EXTERNAL_ONLY: "external_only", rc.VirtualHost.ALL: "all"}

Action = Union[RouteActionConfig, RedirectConfig, DirectResponseConfig]


@dataclass(frozen=True, slots=True, eq=False)
class RouteConfig:
    name: str
    match: RouteMatchConfig
    action: Action
    operation: str = ""  # decorator operation ("" = default span name)
    propagate_operation: bool = True
    request_mutations: tuple[HeaderMutations, ...] = ()  # application order (weighted clusters carry their own)
    response_mutations: tuple[HeaderMutations, ...] = ()
    per_filter_config: Mapping[str, PerFilterConfig] = field(default_factory=lambda: EMPTY)
    per_request_buffer_limit_bytes: int | None = None

    @property
    def kind(self) -> str:
        return {RouteActionConfig: "route", RedirectConfig: "redirect"}.get(type(self.action), "direct_response")

    def filter_config(self, filter_name: str) -> PerFilterConfig | None:
        return self.per_filter_config.get(filter_name)

    def rewrite_path(self, path: str) -> str:
        """The upstream path (query excluded) after prefix_rewrite / regex_rewrite."""
        action = self.action
        if not isinstance(action, RouteActionConfig):
            return path
        if action.regex_rewrite is not None:
            return action.regex_rewrite.apply(path)
        if action.prefix_rewrite is not None:
            if self.match.kind in ("prefix", "path_separated_prefix"):
                return action.prefix_rewrite + path[len(self.match.value):]
            return action.prefix_rewrite
        return path


@dataclass(frozen=True, slots=True, eq=False)
class VirtualHostConfig:
    name: str
    domains: tuple[str, ...]
    routes: tuple[RouteConfig, ...]
    require_tls: str = "none"  # none | external_only | all
    include_request_attempt_count: bool = False
    include_attempt_count_in_response: bool = False
    include_is_timeout_retry_header: bool = False
    _matchers: tuple[tuple[Callable[[RequestView], bool], RouteConfig], ...] = field(default=(), repr=False)

    def match(self, request: RequestView) -> RouteConfig | None:
        for matches, route in self._matchers:
            if matches(request):
                return route
        return None


@dataclass(frozen=True, slots=True, eq=False)
class RouteTable:
    name: str
    virtual_hosts: tuple[VirtualHostConfig, ...]
    ignore_port_in_host_matching: bool = False
    vhost_header: str = ""  # select the vhost by this header instead of :authority
    internal_only_headers: tuple[str, ...] = ()
    validate_clusters: bool = False
    max_direct_response_body_size_bytes: int = DEFAULT_MAX_DIRECT_RESPONSE_BODY
    _exact: Mapping[str, VirtualHostConfig] = field(default_factory=dict, repr=False)
    _suffixes: tuple[tuple[int, Mapping[str, VirtualHostConfig]], ...] = field(default=(), repr=False)
    _prefixes: tuple[tuple[int, Mapping[str, VirtualHostConfig]], ...] = field(default=(), repr=False)
    _default: VirtualHostConfig | None = field(default=None, repr=False)

    def select_virtual_host(self, authority: str) -> VirtualHostConfig | None:
        host = authority.lower()
        if self.ignore_port_in_host_matching:
            host = strip_port(host)
        vh = self._exact.get(host)
        if vh is not None:
            return vh
        n = len(host)
        for length, table in self._suffixes:  # longest first
            if length < n:
                vh = table.get(host[n - length:])
                if vh is not None:
                    return vh
        for length, table in self._prefixes:
            if length < n:
                vh = table.get(host[:length])
                if vh is not None:
                    return vh
        return self._default

    def match(self, authority: str, path: str, headers_getter: Callable[[str], str | None], method: str = "GET",
              query: str = "", *, scheme: str = "http", random_value: int = 0
              ) -> tuple[VirtualHostConfig, RouteConfig] | None:
        """Envoy's route selection: (virtual host, route), or None (404, response flag NR).
        `path` excludes the query; `headers_getter(lower_name)` returns a value or None."""
        selector = authority
        if self.vhost_header:
            selector = headers_getter(self.vhost_header) or ""
        vh = self.select_virtual_host(selector)
        if vh is None:
            return None
        route = vh.match(RequestView(authority, path, headers_getter, method, query, scheme, random_value))
        return None if route is None else (vh, route)

    def clusters(self) -> set[str]:
        """Every cluster a route here may send to (not cluster_header ones)."""
        out: set[str] = set()
        for vh in self.virtual_hosts:
            for r in vh.routes:
                a = r.action
                if isinstance(a, RouteActionConfig):
                    if a.cluster:
                        out.add(a.cluster)
                    if a.weighted_clusters:
                        out.update(c.name for c in a.weighted_clusters.clusters)
                    out.update(m.cluster for m in a.mirror_policies)
        return out


def strip_port(host: str) -> str:
    """`host:port` → `host`; `[v6]:port` → `[v6]`; anything else unchanged (Envoy's getPortStart)."""
    colon = host.rfind(":")
    if colon < 0:
        return host
    bracket = host.rfind("]")
    if bracket != -1 and bracket > colon:
        return host
    return host[:colon]


@dataclass(frozen=True)
class _Scope:
    """What routes inherit from their virtual host and route configuration."""

    request: tuple[HeaderMutations, ...]  # least specific last (vhost, config)
    response: tuple[HeaderMutations, ...]
    filters: Mapping[str, PerFilterConfig]
    retry: RetryPolicyConfig | None
    mirrors: tuple[MirrorPolicyConfig, ...]
    most_specific_wins: bool
    max_body: int
    buffer_limit: int | None


def _chain(specific: tuple[HeaderMutations, ...], scope_levels: tuple[HeaderMutations, ...], most_specific_wins: bool):
    levels = tuple(m for m in specific + scope_levels if not m.empty)
    return tuple(reversed(levels)) if most_specific_wins else levels


def _merge(base: Mapping[str, PerFilterConfig], top: Mapping[str, PerFilterConfig]) -> Mapping[str, PerFilterConfig]:
    if not top:
        return base
    if not base:
        return top
    return MappingProxyType({**base, **top})


def compile_route(msg: rc.Route, where: Where, scope: _Scope) -> RouteConfig:
    ROUTE.check(msg, where)
    match = compile_route_match(msg.match, where.at("match"))
    req = mutations_of(msg, where, "request")
    resp = mutations_of(msg, where, "response")
    filters = _merge(scope.filters, per_filter_config(msg.typed_per_filter_config, where.at("typed_per_filter_config")))

    def cluster_weight(c: rc.WeightedCluster.ClusterWeight, w: Where) -> ClusterWeightConfig:
        return ClusterWeightConfig(
            name=c.name,
            weight=wrapped(c, "weight", 0),
            host_rewrite_literal=c.host_rewrite_literal,
            request_mutations=_chain((mutations_of(c, w, "request"), req), scope.request, scope.most_specific_wins),
            response_mutations=_chain((mutations_of(c, w, "response"), resp), scope.response, scope.most_specific_wins),
            per_filter_config=_merge(filters, per_filter_config(c.typed_per_filter_config, w.at("typed_per_filter_config"))),
        )

    which = msg.WhichOneof("action")
    if which == "route":
        action: Action = route_action(msg.route, where.at("route"), cluster_weight, scope.retry, scope.mirrors)
    elif which == "redirect":
        action = redirect(msg.redirect, where.at("redirect"))
    elif which == "direct_response":
        action = direct_response(msg.direct_response, where.at("direct_response"), scope.max_body)
    else:
        raise where.invalid("a route needs route, redirect or direct_response")
    operation, propagate = "", True
    if msg.HasField("decorator"):
        DECORATOR.check(msg.decorator, where.at("decorator"))
        operation, propagate = msg.decorator.operation, wrapped(msg.decorator, "propagate", True)
    return RouteConfig(
        name=msg.name,
        match=match,
        action=action,
        operation=operation,
        propagate_operation=propagate,
        request_mutations=_chain((req,), scope.request, scope.most_specific_wins),
        response_mutations=_chain((resp,), scope.response, scope.most_specific_wins),
        per_filter_config=filters,
        per_request_buffer_limit_bytes=wrapped(msg, "per_request_buffer_limit_bytes", scope.buffer_limit),
    )


def compile_virtual_host(msg: rc.VirtualHost, where: Where, top: _Scope) -> VirtualHostConfig:
    VIRTUAL_HOST.check(msg, where)
    if not msg.domains:
        raise where.at("domains").invalid("a virtual host needs at least one domain")
    scope = _Scope(
        request=(mutations_of(msg, where, "request"),) + top.request,
        response=(mutations_of(msg, where, "response"),) + top.response,
        filters=_merge(top.filters, per_filter_config(msg.typed_per_filter_config, where.at("typed_per_filter_config"))),
        retry=retry_policy(msg.retry_policy, where.at("retry_policy")) if msg.HasField("retry_policy") else None,
        mirrors=mirror_policies(msg.request_mirror_policies, where.at("request_mirror_policies")) or top.mirrors,
        most_specific_wins=top.most_specific_wins,
        max_body=top.max_body,
        buffer_limit=wrapped(msg, "per_request_buffer_limit_bytes", None),
    )
    routes = tuple(compile_route(r, where.at("routes").idx(i), scope) for i, r in enumerate(msg.routes))
    return VirtualHostConfig(
        name=msg.name,
        domains=tuple(msg.domains),
        routes=routes,
        require_tls=enum(REQUIRE_TLS, msg, "require_tls", where),
        include_request_attempt_count=msg.include_request_attempt_count,
        include_attempt_count_in_response=msg.include_attempt_count_in_response,
        include_is_timeout_retry_header=msg.include_is_timeout_retry_header,
        _matchers=tuple((r.match.matches, r) for r in routes),
    )


def _index(vhosts: tuple[VirtualHostConfig, ...], where: Where):
    exact: dict[str, VirtualHostConfig] = {}
    suffixes: dict[int, dict[str, VirtualHostConfig]] = {}
    prefixes: dict[int, dict[str, VirtualHostConfig]] = {}
    default = None
    for i, vh in enumerate(vhosts):
        for domain in vh.domains:
            d = domain.lower()
            if d == "*":
                if default is not None:
                    raise where.at("virtual_hosts").idx(i).at("domains").invalid(
                        f"only one wildcard domain '*' is permitted (also in {default.name!r})")
                default = vh
                continue
            if d.startswith("*"):
                key = d[1:]
                table = suffixes.setdefault(len(key), {})
            elif d.endswith("*"):
                key = d[:-1]
                table = prefixes.setdefault(len(key), {})
            else:
                key, table = d, exact
            if key in table:
                raise where.at("virtual_hosts").idx(i).at("domains").invalid(
                    f"domain {domain!r} is claimed by two virtual hosts ({table[key].name!r} and {vh.name!r})")
            table[key] = vh
    order = lambda t: tuple((n, MappingProxyType(t[n])) for n in sorted(t, reverse=True))  # noqa: E731
    return MappingProxyType(exact), order(suffixes), order(prefixes), default


def compile_route_configuration(msg: route_pb2.RouteConfiguration) -> RouteTable:
    return compile_route_table(msg, Where(ROUTE_TYPE_URL, msg.name))


def compile_route_table(msg: route_pb2.RouteConfiguration, where: Where) -> RouteTable:
    """Also used for an HCM's inline route_config (reported under the listener)."""
    ROUTE_CONFIGURATION.check(msg, where)
    max_body = wrapped(msg, "max_direct_response_body_size_bytes", DEFAULT_MAX_DIRECT_RESPONSE_BODY)
    top = _Scope(
        request=(mutations_of(msg, where, "request"),),
        response=(mutations_of(msg, where, "response"),),
        filters=per_filter_config(msg.typed_per_filter_config, where.at("typed_per_filter_config")),
        retry=None,
        mirrors=mirror_policies(msg.request_mirror_policies, where.at("request_mirror_policies")),
        most_specific_wins=msg.most_specific_header_mutations_wins,
        max_body=max_body,
        buffer_limit=None,
    )
    vhosts = tuple(compile_virtual_host(v, where.at("virtual_hosts").idx(i), top) for i, v in enumerate(msg.virtual_hosts))
    exact, suffixes, prefixes, default = _index(vhosts, where)
    return RouteTable(
        name=msg.name,
        virtual_hosts=vhosts,
        ignore_port_in_host_matching=msg.ignore_port_in_host_matching,
        vhost_header=msg.vhost_header.lower(),
        internal_only_headers=tuple(h.lower() for h in msg.internal_only_headers),
        validate_clusters=wrapped(msg, "validate_clusters", False),
        max_direct_response_body_size_bytes=max_body,
        _exact=exact,
        _suffixes=suffixes,
        _prefixes=prefixes,
        _default=default,
    )
