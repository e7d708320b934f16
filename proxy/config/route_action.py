"""What a matched route does: forward (`RouteActionConfig`), redirect, or answer directly.

Forwarding: one cluster, a cluster named by a header, or weighted clusters
(`WeightedClustersConfig.pick(random)` is Envoy's cumulative-weight walk); path rewrites
(prefix / RE2 regex, compiled once), host rewrites, timeouts (unset → Envoy's 15 s,
0 → disabled), retry policy, mirrors, hash policy, max stream duration, upgrades.
Scope-level defaults (vhost retry policy and mirrors) are resolved here, once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import previous_priorities_config_pb2 as prio_pb2
from envoy.type.matcher.v3 import regex_pb2

from isthmus.proxy.config.common import (
    ALWAYS, EMPTY, Fraction, by_name, enum, opt_seconds, runtime_fraction, seconds, timeout, unpack, wrapped,
)
from isthmus.proxy.config.matchers import HeaderMatch, HeaderMutations, header_matcher, regex_matcher
from isthmus.proxy.config.errors import Fields, Where

ACTION = Fields(rc.RouteAction, {
    "cluster", "cluster_header", "weighted_clusters", "cluster_not_found_response_code", "prefix_rewrite",
    "regex_rewrite", "host_rewrite_literal", "auto_host_rewrite", "host_rewrite_header", "host_rewrite_path_regex",
    "append_x_forwarded_host", "timeout", "idle_timeout", "retry_policy", "request_mirror_policies", "priority",
    "hash_policy", "max_grpc_timeout", "grpc_timeout_offset", "upgrade_configs", "max_stream_duration",
}, {"include_vh_rate_limits": "no rate limiting configured anywhere"})
WEIGHTED = Fields(rc.WeightedCluster, {"clusters", "total_weight"}, {"runtime_key_prefix": "no runtime layer"})
CLUSTER_WEIGHT = Fields(rc.WeightedCluster.ClusterWeight, {
    "name", "weight", "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
    "response_headers_to_remove", "typed_per_filter_config", "host_rewrite_literal",
})
RETRY = Fields(rc.RetryPolicy, {
    "retry_on", "num_retries", "per_try_timeout", "per_try_idle_timeout", "retry_priority", "retry_host_predicate",
    "host_selection_retry_max_attempts", "retriable_status_codes", "retry_back_off", "retriable_headers",
    "retriable_request_headers",
})
BACK_OFF = Fields(rc.RetryPolicy.RetryBackOff, {"base_interval", "max_interval"})
RETRY_PRIORITY = Fields(rc.RetryPolicy.RetryPriority, {"name", "typed_config"})
RETRY_HOST = Fields(rc.RetryPolicy.RetryHostPredicate, {"name", "typed_config"})
PREVIOUS_PRIORITIES = Fields(prio_pb2.PreviousPrioritiesConfig, {"update_frequency"})
PREVIOUS_HOSTS = Fields(previous_hosts_pb2.PreviousHostsPredicate, ())
MIRROR = Fields(rc.RouteAction.RequestMirrorPolicy, {"cluster", "runtime_fraction", "trace_sampled",
                                                     "disable_shadow_host_suffix_append"})
HASH = Fields(rc.RouteAction.HashPolicy, {"header", "cookie", "connection_properties", "query_parameter", "terminal"})
HASH_HEADER = Fields(rc.RouteAction.HashPolicy.Header, {"header_name", "regex_rewrite"})
HASH_COOKIE = Fields(rc.RouteAction.HashPolicy.Cookie, {"name", "ttl", "path", "attributes"})
MAX_STREAM = Fields(rc.RouteAction.MaxStreamDuration, {"max_stream_duration", "grpc_timeout_header_max", "grpc_timeout_header_offset"})
UPGRADE = Fields(rc.RouteAction.UpgradeConfig, {"upgrade_type", "enabled"})
REDIRECT = Fields(rc.RedirectAction, {"https_redirect", "scheme_redirect", "host_redirect", "port_redirect", "path_redirect",
                                      "prefix_rewrite", "regex_rewrite", "response_code", "strip_query"})
DIRECT = Fields(rc.DirectResponseAction, {"status", "body"})
REGEX_REWRITE = Fields(regex_pb2.RegexMatchAndSubstitute, {"pattern", "substitution"})

RETRY_ON = frozenset({
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited", "retriable-4xx",
    "refused-stream", "retriable-status-codes", "retriable-headers", "http3-post-connect-failure",
    "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
})
RETRY_EXTENSIONS = by_name(previous_hosts_pb2.PreviousHostsPredicate, prio_pb2.PreviousPrioritiesConfig)
PREVIOUS_HOSTS_NAME = "envoy.retry_host_predicates.previous_hosts"
PREVIOUS_PRIORITIES_NAME = "envoy.retry_priorities.previous_priorities"
REDIRECT_CODES = {rc.RedirectAction.MOVED_PERMANENTLY: 301, rc.RedirectAction.FOUND: 302, rc.RedirectAction.SEE_OTHER: 303,
                  rc.RedirectAction.TEMPORARY_REDIRECT: 307, rc.RedirectAction.PERMANENT_REDIRECT: 308}
NOT_FOUND_CODES = {rc.RouteAction.SERVICE_UNAVAILABLE: 503, rc.RouteAction.NOT_FOUND: 404,
                   rc.RouteAction.INTERNAL_SERVER_ERROR: 500}
PRIORITIES = {base_pb2.DEFAULT: "default", base_pb2.HIGH: "high"}
DEFAULT_ROUTE_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class RegexRewrite:
    pattern: str
    substitution: str
    compiled: object = field(compare=False, repr=False)

    def apply(self, path: str) -> str:
        return self.compiled.sub(self.substitution, path)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class RetryPolicyConfig:
    retry_on: frozenset[str]
    num_retries: int = 1
    per_try_timeout: float | None = None
    per_try_idle_timeout: float | None = None
    retry_host_predicates: tuple[str, ...] = ()  # "previous_hosts"
    retry_priority_update_frequency: int | None = None  # previous_priorities, when set
    host_selection_retry_max_attempts: int = 1
    retriable_status_codes: frozenset[int] = frozenset()
    back_off_base: float = 0.025
    back_off_max: float = 0.25
    retriable_headers: tuple[HeaderMatch, ...] = ()
    retriable_request_headers: tuple[HeaderMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class HashPolicyConfig:
    kind: str  # header | cookie | source_ip | query_parameter
    name: str = ""  # header (lower-case), cookie or query parameter name
    terminal: bool = False
    header_rewrite: RegexRewrite | None = None
    cookie_ttl: float | None = None  # set: generate the cookie when absent
    cookie_path: str = ""
    cookie_attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class MirrorPolicyConfig:
    cluster: str
    fraction: Fraction = ALWAYS
    trace_sampled: bool | None = None
    disable_shadow_host_suffix_append: bool = False


@dataclass(frozen=True, slots=True)
class ClusterWeightConfig:
    name: str
    weight: int
    host_rewrite_literal: str = ""
    request_mutations: tuple[HeaderMutations, ...] = ()  # full chain, application order
    response_mutations: tuple[HeaderMutations, ...] = ()
    per_filter_config: Mapping[str, object] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class WeightedClustersConfig:
    clusters: tuple[ClusterWeightConfig, ...]
    total_weight: int
    _ends: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def pick(self, random_value: int) -> ClusterWeightConfig:
        selected = random_value % self.total_weight
        for end, cluster in zip(self._ends, self.clusters):
            if selected < end:
                return cluster
        return self.clusters[-1]


@dataclass(frozen=True, slots=True)
class RouteActionConfig:
    cluster: str = ""
    cluster_header: str = ""
    weighted_clusters: WeightedClustersConfig | None = None
    cluster_not_found_response_code: int = 503
    prefix_rewrite: str | None = None
    regex_rewrite: RegexRewrite | None = None
    host_rewrite_literal: str = ""
    auto_host_rewrite: bool = False
    host_rewrite_header: str = ""
    host_rewrite_path_regex: RegexRewrite | None = None
    append_x_forwarded_host: bool = False
    timeout: float | None = DEFAULT_ROUTE_TIMEOUT  # None: no timeout
    idle_timeout: float | None = None
    retry_policy: RetryPolicyConfig | None = None  # the route's, else the virtual host's
    mirror_policies: tuple[MirrorPolicyConfig, ...] = ()
    hash_policies: tuple[HashPolicyConfig, ...] = ()
    priority: str = "default"  # circuit-breaker priority: default | high
    max_stream_duration: float | None = None
    grpc_timeout_header_max: float | None = None  # set: honour grpc-timeout, capped (0 = uncapped)
    grpc_timeout_header_offset: float | None = None
    upgrades: Mapping[str, bool] = field(default_factory=lambda: EMPTY)  # upgrade type → enabled


@dataclass(frozen=True, slots=True)
class RedirectConfig:
    scheme: str = ""  # "" keeps the request's
    host: str = ""
    port: int = 0  # 0 keeps the request's
    path: str | None = None
    prefix_rewrite: str | None = None
    regex_rewrite: RegexRewrite | None = None
    response_code: int = 301
    strip_query: bool = False


@dataclass(frozen=True, slots=True)
class DirectResponseConfig:
    status: int
    body: bytes | None = None


def regex_rewrite(msg: regex_pb2.RegexMatchAndSubstitute, where: Where) -> RegexRewrite:
    REGEX_REWRITE.check(msg, where)
    rx = regex_matcher(msg.pattern, where.at("pattern"))
    return RegexRewrite(msg.pattern.regex, msg.substitution, rx)


def retry_policy(msg: rc.RetryPolicy, where: Where) -> RetryPolicyConfig:
    RETRY.check(msg, where)
    retry_on = frozenset(p.strip() for p in msg.retry_on.split(",") if p.strip())
    unknown = retry_on - RETRY_ON
    if unknown:
        raise where.at("retry_on").unsupported(f"unknown retry_on condition(s) {sorted(unknown)}")
    hosts = []
    for i, p in enumerate(msg.retry_host_predicate):
        w = where.at("retry_host_predicate").idx(i)
        RETRY_HOST.check(p, w)
        if p.HasField("typed_config"):
            PREVIOUS_HOSTS.check(unpack(p.typed_config, w.at("typed_config"), by_name(previous_hosts_pb2.PreviousHostsPredicate)), w)
        elif p.name != PREVIOUS_HOSTS_NAME:
            raise w.at("name").unsupported(f"retry host predicate {p.name!r} is not supported (only previous_hosts)")
        hosts.append("previous_hosts")
    update_frequency = None
    if msg.HasField("retry_priority"):
        w = where.at("retry_priority")
        RETRY_PRIORITY.check(msg.retry_priority, w)
        if not msg.retry_priority.HasField("typed_config"):
            raise w.at("typed_config").invalid("previous_priorities needs its typed_config")
        cfg = unpack(msg.retry_priority.typed_config, w.at("typed_config"), by_name(prio_pb2.PreviousPrioritiesConfig))
        PREVIOUS_PRIORITIES.check(cfg, w.at("typed_config"))
        update_frequency = cfg.update_frequency
    base, cap = 0.025, None
    if msg.HasField("retry_back_off"):
        w = where.at("retry_back_off")
        BACK_OFF.check(msg.retry_back_off, w)
        base = seconds(msg.retry_back_off.base_interval)
        if base <= 0:
            raise w.at("base_interval").invalid("base_interval must be > 0")
        cap = opt_seconds(msg.retry_back_off, "max_interval")
        if cap is not None and cap < base:
            raise w.at("max_interval").invalid("max_interval must be >= base_interval")
    return RetryPolicyConfig(
        retry_on=retry_on,
        num_retries=wrapped(msg, "num_retries", 1),
        per_try_timeout=opt_seconds(msg, "per_try_timeout") or None,
        per_try_idle_timeout=opt_seconds(msg, "per_try_idle_timeout") or None,
        retry_host_predicates=tuple(hosts),
        retry_priority_update_frequency=update_frequency,
        host_selection_retry_max_attempts=msg.host_selection_retry_max_attempts or 1,
        retriable_status_codes=frozenset(msg.retriable_status_codes),
        back_off_base=base,
        back_off_max=cap if cap is not None else 10 * base,
        retriable_headers=tuple(header_matcher(h, where.at("retriable_headers").idx(i)) for i, h in enumerate(msg.retriable_headers)),
        retriable_request_headers=tuple(header_matcher(h, where.at("retriable_request_headers").idx(i))
                                        for i, h in enumerate(msg.retriable_request_headers)),
    )


def mirror_policies(policies, where: Where) -> tuple[MirrorPolicyConfig, ...]:
    out = []
    for i, m in enumerate(policies):
        w = where.idx(i)
        MIRROR.check(m, w)
        if not m.cluster:
            raise w.at("cluster").invalid("a mirror policy needs a cluster")
        out.append(MirrorPolicyConfig(
            m.cluster,
            runtime_fraction(m.runtime_fraction, w.at("runtime_fraction")) if m.HasField("runtime_fraction") else ALWAYS,
            wrapped(m, "trace_sampled", None),
            m.disable_shadow_host_suffix_append,
        ))
    return tuple(out)


def hash_policy(msg: rc.RouteAction.HashPolicy, where: Where) -> HashPolicyConfig:
    HASH.check(msg, where)
    which = msg.WhichOneof("policy_specifier")
    if which == "header":
        w = where.at("header")
        HASH_HEADER.check(msg.header, w)
        rewrite = regex_rewrite(msg.header.regex_rewrite, w.at("regex_rewrite")) if msg.header.HasField("regex_rewrite") else None
        return HashPolicyConfig("header", msg.header.header_name.lower(), msg.terminal, header_rewrite=rewrite)
    if which == "cookie":
        c, w = msg.cookie, where.at("cookie")
        HASH_COOKIE.check(c, w)
        return HashPolicyConfig("cookie", c.name, msg.terminal, cookie_ttl=opt_seconds(c, "ttl"), cookie_path=c.path,
                                cookie_attributes=tuple((a.name, a.value) for a in c.attributes))
    if which == "connection_properties":
        if not msg.connection_properties.source_ip:
            raise where.at(which).invalid("connection_properties hashes only on source_ip")
        return HashPolicyConfig("source_ip", "", msg.terminal)
    if which == "query_parameter":
        return HashPolicyConfig("query_parameter", msg.query_parameter.name, msg.terminal)
    raise where.invalid("a hash policy needs header, cookie, connection_properties or query_parameter")


def weighted_clusters(msg: rc.WeightedCluster, where: Where, cluster_weight) -> WeightedClustersConfig:
    """`cluster_weight(msg, where) -> ClusterWeightConfig` resolves header/filter scopes."""
    WEIGHTED.check(msg, where)
    clusters = []
    for i, c in enumerate(msg.clusters):
        w = where.at("clusters").idx(i)
        CLUSTER_WEIGHT.check(c, w)
        if not c.name:
            raise w.at("name").invalid("a weighted cluster needs a name")
        clusters.append(cluster_weight(c, w))
    if not clusters:
        raise where.at("clusters").invalid("weighted_clusters needs at least one cluster")
    total = sum(c.weight for c in clusters)
    if msg.HasField("total_weight") and msg.total_weight.value != total:
        raise where.at("total_weight").invalid(f"sum of weights {total} does not equal total_weight {msg.total_weight.value}")
    if total <= 0:
        raise where.invalid("the sum of cluster weights must be greater than 0")
    ends, running = [], 0
    for c in clusters:
        running += c.weight
        ends.append(running)
    return WeightedClustersConfig(tuple(clusters), total, tuple(ends))


def route_action(msg: rc.RouteAction, where: Where, cluster_weight, vhost_retry: RetryPolicyConfig | None,
                 scope_mirrors: tuple[MirrorPolicyConfig, ...]) -> RouteActionConfig:
    ACTION.check(msg, where)
    which = msg.WhichOneof("cluster_specifier")
    if which is None:
        raise where.invalid("a route action needs cluster, cluster_header or weighted_clusters")
    if which == "cluster" and not msg.cluster:
        raise where.at("cluster").invalid("cluster name must not be empty")
    rewrite = msg.WhichOneof("host_rewrite_specifier")
    msd = msg.max_stream_duration
    if msg.HasField("max_stream_duration"):
        MAX_STREAM.check(msd, where.at("max_stream_duration"))
    grpc_max = opt_seconds(msd, "grpc_timeout_header_max") if msg.HasField("max_stream_duration") else None
    if grpc_max is None and msg.HasField("max_grpc_timeout"):
        grpc_max = seconds(msg.max_grpc_timeout)
    grpc_offset = opt_seconds(msd, "grpc_timeout_header_offset") if msg.HasField("max_stream_duration") else None
    if grpc_offset is None and msg.HasField("grpc_timeout_offset"):
        grpc_offset = seconds(msg.grpc_timeout_offset)
    upgrades = {}
    for i, u in enumerate(msg.upgrade_configs):
        UPGRADE.check(u, where.at("upgrade_configs").idx(i))
        upgrades[u.upgrade_type.lower()] = wrapped(u, "enabled", True)
    mirrors = mirror_policies(msg.request_mirror_policies, where.at("request_mirror_policies"))
    return RouteActionConfig(
        cluster=msg.cluster,
        cluster_header=msg.cluster_header.lower(),
        weighted_clusters=weighted_clusters(msg.weighted_clusters, where.at(which), cluster_weight) if which == "weighted_clusters" else None,
        cluster_not_found_response_code=enum(NOT_FOUND_CODES, msg, "cluster_not_found_response_code", where),
        prefix_rewrite=msg.prefix_rewrite if msg.prefix_rewrite else None,
        regex_rewrite=regex_rewrite(msg.regex_rewrite, where.at("regex_rewrite")) if msg.HasField("regex_rewrite") else None,
        host_rewrite_literal=msg.host_rewrite_literal if rewrite == "host_rewrite_literal" else "",
        auto_host_rewrite=rewrite == "auto_host_rewrite" and msg.auto_host_rewrite.value,
        host_rewrite_header=msg.host_rewrite_header.lower() if rewrite == "host_rewrite_header" else "",
        host_rewrite_path_regex=regex_rewrite(msg.host_rewrite_path_regex, where.at(rewrite)) if rewrite == "host_rewrite_path_regex" else None,
        append_x_forwarded_host=msg.append_x_forwarded_host,
        timeout=timeout(msg, "timeout", DEFAULT_ROUTE_TIMEOUT),
        idle_timeout=opt_seconds(msg, "idle_timeout"),  # None: the HCM's stream_idle_timeout; 0: none
        retry_policy=retry_policy(msg.retry_policy, where.at("retry_policy")) if msg.HasField("retry_policy") else vhost_retry,
        mirror_policies=mirrors or scope_mirrors,
        hash_policies=tuple(hash_policy(h, where.at("hash_policy").idx(i)) for i, h in enumerate(msg.hash_policy)),
        priority=enum(PRIORITIES, msg, "priority", where),
        # None: the HCM's max_stream_duration applies; 0: none for this route (Envoy's convention here)
        max_stream_duration=opt_seconds(msd, "max_stream_duration") if msg.HasField("max_stream_duration") else None,
        grpc_timeout_header_max=grpc_max,
        grpc_timeout_header_offset=grpc_offset,
        upgrades=upgrades or EMPTY,
    )


def redirect(msg: rc.RedirectAction, where: Where) -> RedirectConfig:
    REDIRECT.check(msg, where)
    scheme = "https" if msg.WhichOneof("scheme_rewrite_specifier") == "https_redirect" and msg.https_redirect else msg.scheme_redirect
    path_kind = msg.WhichOneof("path_rewrite_specifier")
    return RedirectConfig(
        scheme=scheme.lower(),
        host=msg.host_redirect,
        port=msg.port_redirect,
        path=msg.path_redirect if path_kind == "path_redirect" else None,
        prefix_rewrite=msg.prefix_rewrite if path_kind == "prefix_rewrite" else None,
        regex_rewrite=regex_rewrite(msg.regex_rewrite, where.at("regex_rewrite")) if path_kind == "regex_rewrite" else None,
        response_code=enum(REDIRECT_CODES, msg, "response_code", where),
        strip_query=msg.strip_query,
    )


def direct_response(msg: rc.DirectResponseAction, where: Where, max_body: int) -> DirectResponseConfig:
    DIRECT.check(msg, where)
    if not 200 <= msg.status < 600:
        raise where.at("status").invalid(f"status {msg.status} must be in [200, 600)")
    body = None
    if msg.HasField("body"):
        which = msg.body.WhichOneof("specifier")
        if which == "inline_string":
            body = msg.body.inline_string.encode()
        elif which == "inline_bytes":
            body = bytes(msg.body.inline_bytes)
        else:
            raise where.at("body").unsupported("only inline direct response bodies are supported")
        if len(body) > max_body:
            raise where.at("body").invalid(f"body of {len(body)} bytes exceeds max_direct_response_body_size_bytes ({max_body})")
    return DirectResponseConfig(msg.status, body)
