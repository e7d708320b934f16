"""The HTTP filter chain (fault → cors → router) and its per-route configurations.

`http_filters(...)` compiles the HCM's list (router last, exactly once); filters are
identified by typed_config type URL, as Envoy does. `per_filter_config(...)` compiles
a typed_per_filter_config map into `FaultConfig` / `CorsPolicyConfig` (or `DISABLED`)
keyed by filter name, for the runtime to look up most-specific-first.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Union

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from isthmus.proxy.config.access_log import AccessLogConfig, access_logs
from isthmus.proxy.config.common import ALWAYS, EMPTY, Fraction, by_name, fractional, runtime_fraction, unpack, wrapped
from isthmus.proxy.config.matchers import HeaderMatch, StringMatch, header_matcher, string_matcher
from isthmus.proxy.config.errors import Fields, Where, short_type

HTTP_FILTER = Fields(hcm_pb2.HttpFilter, {"name", "typed_config", "is_optional", "disabled"})
ROUTER = Fields(router_pb2.Router, {"start_child_span", "upstream_log", "suppress_envoy_headers", "strict_check_headers",
                                    "respect_expected_rq_timeout"},
                {"dynamic_stats": "stats only", "suppress_grpc_request_failure_code_stats": "stats only"})
FAULT = Fields(fault_pb2.HTTPFault, {"delay", "abort", "upstream_cluster", "headers", "downstream_nodes", "max_active_faults"}, {
    "delay_percent_runtime": "no runtime layer", "abort_percent_runtime": "no runtime layer",
    "delay_duration_runtime": "no runtime layer", "abort_http_status_runtime": "no runtime layer",
    "max_active_faults_runtime": "no runtime layer", "response_rate_limit_percent_runtime": "no runtime layer",
    "abort_grpc_status_runtime": "no runtime layer", "disable_downstream_cluster_stats": "stats only",
    "filter_metadata": "dynamic metadata for loggers only",
})
FAULT_DELAY = Fields(common_fault_pb2.FaultDelay, {"fixed_delay", "header_delay", "percentage"})
FAULT_ABORT = Fields(fault_pb2.FaultAbort, {"http_status", "grpc_status", "header_abort", "percentage"})
CORS_FILTER = Fields(cors_pb2.Cors, ())
CORS_POLICY = Fields(cors_pb2.CorsPolicy, {
    "allow_origin_string_match", "allow_methods", "allow_headers", "expose_headers", "max_age", "allow_credentials",
    "filter_enabled", "shadow_enabled", "allow_private_network_access", "forward_not_matching_preflights",
})
FILTER_CONFIG = Fields(rc.FilterConfig, {"config", "is_optional", "disabled"})

FILTER_TYPES = by_name(router_pb2.Router, fault_pb2.HTTPFault, cors_pb2.Cors)
PER_ROUTE_TYPES = by_name(fault_pb2.HTTPFault, cors_pb2.CorsPolicy, rc.FilterConfig)
KINDS = {"envoy.extensions.filters.http.router.v3.Router": "router",
         "envoy.extensions.filters.http.fault.v3.HTTPFault": "fault",
         "envoy.extensions.filters.http.cors.v3.Cors": "cors"}


@dataclass(frozen=True, slots=True)
class RouterConfig:
    start_child_span: bool = False
    suppress_envoy_headers: bool = False
    strict_check_headers: tuple[str, ...] = ()
    respect_expected_rq_timeout: bool = False
    upstream_logs: tuple[AccessLogConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class FaultDelayConfig:
    fixed_delay: float | None  # None with header_delay: the x-envoy-fault-delay-request header decides
    header_delay: bool
    percentage: Fraction


@dataclass(frozen=True, slots=True)
class FaultAbortConfig:
    http_status: int | None
    grpc_status: int | None
    header_abort: bool
    percentage: Fraction


@dataclass(frozen=True, slots=True)
class FaultConfig:
    delay: FaultDelayConfig | None = None
    abort: FaultAbortConfig | None = None
    upstream_cluster: str = ""  # only faults requests to this cluster ("" = any)
    headers: tuple[HeaderMatch, ...] = ()  # all must match for the fault to apply
    downstream_nodes: tuple[str, ...] = ()  # x-envoy-downstream-service-node must be one of these
    max_active_faults: int | None = None

    @property
    def active(self) -> bool:
        return self.delay is not None or self.abort is not None


@dataclass(frozen=True, slots=True)
class CorsFilterConfig:
    """The CORS filter itself has no settings; policies come per route/vhost."""


@dataclass(frozen=True, slots=True)
class CorsPolicyConfig:
    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: str = ""
    allow_headers: str = ""
    expose_headers: str = ""
    max_age: str = ""
    allow_credentials: bool = False
    filter_enabled: Fraction = ALWAYS
    shadow_enabled: Fraction | None = None
    allow_private_network_access: bool = False
    forward_not_matching_preflights: bool = True


@dataclass(frozen=True, slots=True)
class FilterDisabled:
    """A per-route FilterConfig with `disabled: true`: skip this filter for the route."""


DISABLED = FilterDisabled()
PerFilterConfig = Union[FaultConfig, CorsPolicyConfig, FilterDisabled]


@dataclass(frozen=True, slots=True)
class HttpFilterConfig:
    name: str
    kind: str  # router | fault | cors
    config: Union[RouterConfig, FaultConfig, CorsFilterConfig]
    disabled: bool = False  # disabled unless a route enables it


def router(msg: router_pb2.Router, where: Where) -> RouterConfig:
    ROUTER.check(msg, where)
    return RouterConfig(
        start_child_span=msg.start_child_span,
        suppress_envoy_headers=msg.suppress_envoy_headers,
        strict_check_headers=tuple(h.lower() for h in msg.strict_check_headers),
        respect_expected_rq_timeout=msg.respect_expected_rq_timeout,
        upstream_logs=access_logs(msg.upstream_log, where.at("upstream_log")),
    )


def fault(msg: fault_pb2.HTTPFault, where: Where) -> FaultConfig:
    FAULT.check(msg, where)
    delay = abort = None
    if msg.HasField("delay"):
        d, w = msg.delay, where.at("delay")
        FAULT_DELAY.check(d, w)
        which = d.WhichOneof("fault_delay_secifier")
        if which is None:
            raise w.invalid("a fault delay needs fixed_delay or header_delay")
        fixed = d.fixed_delay.seconds + d.fixed_delay.nanos / 1e9 if which == "fixed_delay" else None
        delay = FaultDelayConfig(fixed, which == "header_delay", fractional(d.percentage, w.at("percentage")))
    if msg.HasField("abort"):
        a, w = msg.abort, where.at("abort")
        FAULT_ABORT.check(a, w)
        which = a.WhichOneof("error_type")
        if which is None:
            raise w.invalid("a fault abort needs http_status, grpc_status or header_abort")
        if which == "http_status" and not 200 <= a.http_status < 600:
            raise w.at("http_status").invalid(f"abort status {a.http_status} must be in [200, 600)")
        abort = FaultAbortConfig(
            a.http_status if which == "http_status" else None,
            a.grpc_status if which == "grpc_status" else None,
            which == "header_abort",
            fractional(a.percentage, w.at("percentage")),
        )
    return FaultConfig(
        delay=delay,
        abort=abort,
        upstream_cluster=msg.upstream_cluster,
        headers=tuple(header_matcher(h, where.at("headers").idx(i)) for i, h in enumerate(msg.headers)),
        downstream_nodes=tuple(msg.downstream_nodes),
        max_active_faults=wrapped(msg, "max_active_faults", None),
    )


def cors_policy(msg: cors_pb2.CorsPolicy, where: Where) -> CorsPolicyConfig:
    CORS_POLICY.check(msg, where)
    return CorsPolicyConfig(
        allow_origins=tuple(string_matcher(m, where.at("allow_origin_string_match").idx(i))
                            for i, m in enumerate(msg.allow_origin_string_match)),
        allow_methods=msg.allow_methods,
        allow_headers=msg.allow_headers,
        expose_headers=msg.expose_headers,
        max_age=msg.max_age,
        allow_credentials=wrapped(msg, "allow_credentials", False),
        filter_enabled=runtime_fraction(msg.filter_enabled, where.at("filter_enabled")) if msg.HasField("filter_enabled") else ALWAYS,
        shadow_enabled=runtime_fraction(msg.shadow_enabled, where.at("shadow_enabled")) if msg.HasField("shadow_enabled") else None,
        allow_private_network_access=wrapped(msg, "allow_private_network_access", False),
        forward_not_matching_preflights=wrapped(msg, "forward_not_matching_preflights", True),
    )


def http_filters(filters, where: Where) -> tuple[HttpFilterConfig, ...]:
    out: list[HttpFilterConfig] = []
    for i, f in enumerate(filters):
        w = where.idx(i)
        HTTP_FILTER.check(f, w)
        if not f.HasField("typed_config"):
            raise w.at("typed_config").invalid(f"HTTP filter {f.name!r} needs a typed_config")
        kind = KINDS.get(short_type(f.typed_config.type_url))
        if kind is None and f.is_optional:
            continue  # Envoy: an optional filter the proxy does not know is skipped
        cfg = unpack(f.typed_config, w.at("typed_config"), FILTER_TYPES)
        tw = w.at("typed_config")
        if isinstance(cfg, router_pb2.Router):
            compiled = router(cfg, tw)
        elif isinstance(cfg, fault_pb2.HTTPFault):
            compiled = fault(cfg, tw)
        else:
            CORS_FILTER.check(cfg, tw)
            compiled = CorsFilterConfig()
        if kind == "router" and i != len(filters) - 1:
            raise w.invalid("the router filter must be the last HTTP filter")
        out.append(HttpFilterConfig(f.name, kind, compiled, f.disabled))  # type: ignore[arg-type]
    if not out or out[-1].kind != "router":
        raise where.invalid("the HTTP filter chain must end with envoy.filters.http.router")
    return tuple(out)


def _one(any_msg, where: Where) -> PerFilterConfig | None:
    cfg = unpack(any_msg, where, PER_ROUTE_TYPES)
    if isinstance(cfg, fault_pb2.HTTPFault):
        return fault(cfg, where)
    if isinstance(cfg, cors_pb2.CorsPolicy):
        return cors_policy(cfg, where)
    FILTER_CONFIG.check(cfg, where)
    if cfg.disabled:
        return DISABLED
    if not cfg.HasField("config"):
        return None
    inner = short_type(cfg.config.type_url)
    if cfg.is_optional and inner not in PER_ROUTE_TYPES:
        return None
    return _one(cfg.config, where.at("config"))


def per_filter_config(configs, where: Where) -> Mapping[str, PerFilterConfig]:
    """typed_per_filter_config → {filter name: compiled config}."""
    if not configs:
        return EMPTY
    out = {}
    for name in sorted(configs):
        compiled = _one(configs[name], where.key(name))
        if compiled is not None:
            out[name] = compiled
    return MappingProxyType(out)
