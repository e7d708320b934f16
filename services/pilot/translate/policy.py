"""DestinationRule traffic policy: Istio's inheritance rules and their Envoy cluster fields.

`effective_traffic_policy(dr, port, subset)` merges subset over port-level over
top-level exactly as Istio's MergeSubsetTrafficPolicy (a port-level entry replaces
the level above it wholesale; a subset's fields override field by field);
`consistent_hash_policy(policy)` gives the route's hash keys; the `apply_*`
functions write connectionPool / outlierDetection / loadBalancer onto a Cluster.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2, protocol_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import duration_pb2

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.push_context import PushContext
from isthmus.shared.config.types import DestinationRuleSpec, PortTrafficPolicy, TrafficPolicy
from isthmus.shared.config.validation.common import parse_duration

MAX_UINT32 = 2**32 - 1
HashPolicy = route_components_pb2.RouteAction.HashPolicy


def duration(text: str | None) -> duration_pb2.Duration | None:
    """A Go/protobuf duration string ("1.5s", "30ms") → Duration; None when unset or malformed."""
    seconds = parse_duration(text) if text else None
    if seconds is None:
        return None
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def seconds(value: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(value * 1e9))
    return d


# ---- merging (Istio: pilot/pkg/networking/util MergeSubsetTrafficPolicy) ----------------

def _from_port_level(p: PortTrafficPolicy) -> TrafficPolicy:
    return TrafficPolicy(
        connection_pool=p.connection_pool, load_balancer=p.load_balancer,
        outlier_detection=p.outlier_detection, tls=p.tls,
    )


def port_traffic_policy(policy: TrafficPolicy | None, port: int) -> tuple[TrafficPolicy | None, bool]:
    """The policy for `port`: its portLevelSettings entry (replacing the whole policy, unset
    fields falling back to defaults rather than the top level), else the policy itself.
    The flag says whether a port-level entry matched."""
    if policy is None:
        return None, False
    for p in policy.port_level_settings:
        if p.port is not None and p.port.number == port:
            return _from_port_level(p), True
    return dataclasses.replace(policy, port_level_settings=()), False


def merge_traffic_policy(top: TrafficPolicy | None, subset: TrafficPolicy | None, port: int) -> TrafficPolicy | None:
    """Subset over (port-level over top-level) for one port, field by field as Istio does."""
    original, _ = port_traffic_policy(top, port)
    if subset is None:
        return original
    sub, has_port_level = port_traffic_policy(subset, port)
    if original is None:
        return sub
    assert sub is not None
    changes: dict[str, Any] = {}
    for attr in ("connection_pool", "outlier_detection", "load_balancer", "tls"):
        if getattr(sub, attr) is not None or has_port_level:
            changes[attr] = getattr(sub, attr)
    for attr in ("tunnel", "proxy_protocol"):
        if getattr(sub, attr) is not None:
            changes[attr] = getattr(sub, attr)
    return dataclasses.replace(original, **changes)


def effective_traffic_policy(dr: DestinationRuleSpec | None, port: int, subset: str = "") -> TrafficPolicy | None:
    """The merged policy a cluster `outbound|port|subset|host` gets from its DestinationRule."""
    if dr is None:
        return None
    subset_policy = None
    if subset:
        found = next((s for s in dr.subsets if s.name == subset), None)
        subset_policy = found.traffic_policy if found is not None else None
    return merge_traffic_policy(dr.traffic_policy, subset_policy, port)


# ---- consistent hash → route hash_policy -------------------------------------------------

def consistent_hash_policy(policy: TrafficPolicy | None) -> list[HashPolicy]:
    """The RouteAction.hash_policy for a (merged) DR policy's `loadBalancer.consistentHash`:
    header, cookie (name/ttl/path/attributes), source IP or query parameter. [] otherwise."""
    ch = policy.load_balancer.consistent_hash if policy and policy.load_balancer else None
    if ch is None:
        return []
    if ch.http_header_name:
        return [HashPolicy(header=HashPolicy.Header(header_name=ch.http_header_name))]
    if ch.http_cookie is not None:
        cookie = HashPolicy.Cookie(name=ch.http_cookie.name or "", path=ch.http_cookie.path or "")
        ttl = duration(ch.http_cookie.ttl)
        if ttl is not None:
            cookie.ttl.CopyFrom(ttl)
        for a in ch.http_cookie.attributes:
            cookie.attributes.add(name=a.name or "", value=a.value or "")
        return [HashPolicy(cookie=cookie)]
    if ch.use_source_ip:
        return [HashPolicy(connection_properties=HashPolicy.ConnectionProperties(source_ip=True))]
    if ch.http_query_parameter_name:
        return [HashPolicy(query_parameter=HashPolicy.QueryParameter(name=ch.http_query_parameter_name))]
    return []


def hash_policy_for_destination(push: PushContext, proxy_namespace: str, host: str, port: int, subset: str = "") -> list[HashPolicy]:
    """Convenience for routes: the hash policy of the DR that applies to this destination."""
    dr = push.destination_rule(proxy_namespace, host)
    return consistent_hash_policy(effective_traffic_policy(dr.spec if dr else None, port, subset))


# ---- applying a policy to a cluster (Istio: cluster_traffic_policy.go) -------------------

def default_circuit_breakers() -> circuit_breaker_pb2.CircuitBreakers:
    """Istio's defaults: every limit at max uint32 (Envoy's 1024 is too low for a mesh)."""
    t = circuit_breaker_pb2.CircuitBreakers.Thresholds(track_remaining=True)
    for f in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
        getattr(t, f).value = MAX_UINT32
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[t])


def _common_options(opts: http_protocol_options_pb2.HttpProtocolOptions) -> protocol_pb2.HttpProtocolOptions:
    return opts.common_http_protocol_options


def apply_connection_pool(c: cluster_pb2.Cluster, opts: http_protocol_options_pb2.HttpProtocolOptions,
                          policy: TrafficPolicy | None, mesh: MeshConfig) -> None:
    """connect_timeout, circuit breakers, HTTP idle/lifetime limits and TCP keepalive."""
    c.connect_timeout.CopyFrom(seconds(mesh.connect_timeout_s))
    c.circuit_breakers.CopyFrom(default_circuit_breakers())
    cp = policy.connection_pool if policy else None
    if cp is None:
        return
    t = c.circuit_breakers.thresholds[0]
    idle = max_duration = None
    if cp.http is not None:
        h = cp.http
        if h.http2_max_requests:
            t.max_requests.value = h.http2_max_requests
        if h.http1_max_pending_requests:
            t.max_pending_requests.value = h.http1_max_pending_requests
        if h.max_retries:
            t.max_retries.value = h.max_retries
        idle = duration(h.idle_timeout)
        if h.max_requests_per_connection:
            _common_options(opts).max_requests_per_connection.value = h.max_requests_per_connection
        if h.max_concurrent_streams and opts.explicit_http_config.HasField("http2_protocol_options"):
            opts.explicit_http_config.http2_protocol_options.max_concurrent_streams.value = h.max_concurrent_streams
        if h.use_client_protocol:
            use_downstream_protocol(opts)
    if cp.tcp is not None:
        tcp = cp.tcp
        timeout = duration(tcp.connect_timeout)
        if timeout is not None:
            c.connect_timeout.CopyFrom(timeout)
        if tcp.max_connections:
            t.max_connections.value = tcp.max_connections
        max_duration = duration(tcp.max_connection_duration)
        if idle is None:
            idle = duration(tcp.idle_timeout)
        ka = tcp.tcp_keepalive
        if ka is not None:
            keepalive = address_pb2.TcpKeepalive()
            if ka.probes:
                keepalive.keepalive_probes.value = ka.probes
            for attr, field in (("time", "keepalive_time"), ("interval", "keepalive_interval")):
                d = duration(getattr(ka, attr))
                if d is not None:
                    getattr(keepalive, field).value = d.seconds
            c.upstream_connection_options.tcp_keepalive.CopyFrom(keepalive)
    if idle is not None:
        _common_options(opts).idle_timeout.CopyFrom(idle)
    if max_duration is not None:
        _common_options(opts).max_connection_duration.CopyFrom(max_duration)


def use_downstream_protocol(opts: http_protocol_options_pb2.HttpProtocolOptions) -> None:
    """Speak upstream whatever the client spoke (HTTP/1.1 or HTTP/2)."""
    opts.use_downstream_protocol_config.http_protocol_options.SetInParent()
    opts.use_downstream_protocol_config.http2_protocol_options.SetInParent()


def use_http2(opts: http_protocol_options_pb2.HttpProtocolOptions) -> None:
    opts.explicit_http_config.http2_protocol_options.SetInParent()


def apply_outlier_detection(c: cluster_pb2.Cluster, policy: TrafficPolicy | None) -> None:
    """Consecutive 5xx / gateway errors enforced at 100%, success-rate ejection disabled,
    minHealthPercent as the panic threshold (0 when unset), as Istio sets them."""
    od = policy.outlier_detection if policy else None
    if od is None:
        return
    out = outlier_detection_pb2.OutlierDetection()
    out.enforcing_success_rate.value = 0
    if od.consecutive5xx_errors is not None:
        out.consecutive_5xx.value = od.consecutive5xx_errors
        out.enforcing_consecutive_5xx.value = 100 if od.consecutive5xx_errors > 0 else 0
    if od.consecutive_gateway_errors is not None:
        out.consecutive_gateway_failure.value = od.consecutive_gateway_errors
        out.enforcing_consecutive_gateway_failure.value = 100 if od.consecutive_gateway_errors > 0 else 0
    for attr, field in (("interval", "interval"), ("base_ejection_time", "base_ejection_time")):
        d = duration(getattr(od, attr))
        if d is not None:
            getattr(out, field).CopyFrom(d)
    if od.max_ejection_percent:
        out.max_ejection_percent.value = od.max_ejection_percent
    if od.split_external_local_origin_errors:
        out.split_external_local_origin_errors = True
        if od.consecutive_local_origin_failures:
            out.consecutive_local_origin_failure.value = od.consecutive_local_origin_failures
            out.enforcing_consecutive_local_origin_failure.value = 100
        out.enforcing_local_origin_success_rate.value = 0
    c.outlier_detection.CopyFrom(out)
    c.common_lb_config.healthy_panic_threshold.CopyFrom(percent_pb2.Percent(value=float(od.min_health_percent or 0)))


def _slow_start(c: cluster_pb2.Cluster, lb: Any, config_field: str) -> None:
    window = duration(lb.warmup_duration_secs) if lb is not None else None
    if window is None and lb is not None and lb.warmup is not None:
        window = duration(lb.warmup.duration)
    if window is not None:
        getattr(c, config_field).slow_start_config.slow_start_window.CopyFrom(window)


def apply_load_balancer(c: cluster_pb2.Cluster, policy: TrafficPolicy | None) -> None:
    """lb_policy from `simple` (default LEAST_REQUEST, as Istio) or `consistentHash`
    (RING_HASH, MAGLEV); PASSTHROUGH turns the cluster into ORIGINAL_DST."""
    C = cluster_pb2.Cluster
    if c.type == C.ORIGINAL_DST:
        c.lb_policy = C.CLUSTER_PROVIDED
        return
    lb = policy.load_balancer if policy else None
    simple = (lb.simple if lb else None) or ""
    if simple == "ROUND_ROBIN":
        c.lb_policy = C.ROUND_ROBIN
        _slow_start(c, lb, "round_robin_lb_config")
    elif simple == "RANDOM":
        c.lb_policy = C.RANDOM
    elif simple == "PASSTHROUGH":
        c.type = C.ORIGINAL_DST
        c.lb_policy = C.CLUSTER_PROVIDED
        c.ClearField("load_assignment")
        c.ClearField("eds_cluster_config")
        return
    else:  # LEAST_REQUEST, LEAST_CONN (deprecated alias), UNSPECIFIED
        c.lb_policy = C.LEAST_REQUEST
        _slow_start(c, lb, "least_request_lb_config")
    ch = lb.consistent_hash if lb else None
    if ch is None:
        return
    c.ClearField("lb_config")
    if ch.maglev is not None:
        c.lb_policy = C.MAGLEV
        if ch.maglev.table_size:
            c.maglev_lb_config.table_size.value = ch.maglev.table_size
    elif ch.ring_hash is not None:
        c.lb_policy = C.RING_HASH
        if ch.ring_hash.minimum_ring_size:
            c.ring_hash_lb_config.minimum_ring_size.value = ch.ring_hash.minimum_ring_size
    else:
        c.lb_policy = C.RING_HASH
        c.ring_hash_lb_config.minimum_ring_size.value = ch.minimum_ring_size or 1024
