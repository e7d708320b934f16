"""CDS: Cluster → `ClusterConfig`.

Discovery (EDS with its service name and source, STATIC / STRICT_DNS / LOGICAL_DNS with
inline endpoints, ORIGINAL_DST with its header option), load balancing, connect
timeout, circuit breakers, outlier detection, upstream TLS with transport_socket_matches
(`transport_for(endpoint)`: first match on the endpoint's `envoy.transport_socket_match`
metadata, else the cluster's socket), HTTP protocol options, bind address, keepalive.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, protocol_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo_pb2

from isthmus.proxy.config.cluster_policy import (
    CircuitBreakersConfig, LbConfig, OutlierDetectionConfig, circuit_breakers, lb_config, outlier_detection,
)
from isthmus.proxy.config.common import (
    EMPTY, SOCKET_ADDRESS, ConfigSourceRef, config_source, enum, metadata, opt_seconds, struct_dict, timeout, unpack, wrapped,
)
from isthmus.proxy.config.endpoints import EndpointConfig, EndpointsConfig, load_assignment
from isthmus.proxy.config.errors import Fields, Where
from isthmus.proxy.config.filter_chain_match import parse_ip
from isthmus.proxy.config.tls import UpstreamTls, transport_socket

CLUSTER_TYPE_URL = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
C = cluster_pb2.Cluster

CLUSTER = Fields(C, {
    "transport_socket_matches", "name", "type", "eds_cluster_config", "connect_timeout", "per_connection_buffer_limit_bytes",
    "lb_policy", "load_assignment", "max_requests_per_connection", "circuit_breakers", "typed_extension_protocol_options",
    "dns_refresh_rate", "respect_dns_ttl", "dns_lookup_family", "outlier_detection", "cleanup_interval",
    "upstream_bind_config", "ring_hash_lb_config", "maglev_lb_config", "original_dst_lb_config", "least_request_lb_config",
    "round_robin_lb_config", "common_lb_config", "transport_socket", "metadata", "protocol_selection",
    "upstream_connection_options", "close_connections_on_host_health_failure", "ignore_health_on_host_removal",
    "connection_pool_per_downstream_connection",
}, {
    "alt_stat_name": "stats only", "track_cluster_stats": "stats only", "track_timeout_budgets": "stats only",
    "wait_for_warm_on_init": "clusters are usable as soon as compiled",
    "use_tcp_for_dns_lookups": "deprecated resolver transport option",
})
EDS = Fields(C.EdsClusterConfig, {"eds_config", "service_name"})
TRANSPORT_SOCKET_MATCH = Fields(C.TransportSocketMatch, {"name", "match", "transport_socket"})
ORIGINAL_DST = Fields(C.OriginalDstLbConfig, {"use_http_header", "http_header_name", "upstream_port_override"})
BIND = Fields(address_pb2.BindConfig, {"source_address"})
CONNECTION_OPTIONS = Fields(cluster_pb2.UpstreamConnectionOptions, {"tcp_keepalive"},
                            {"set_local_interface_name_on_upstream_connections": "stats/logging only"})
KEEPALIVE = Fields(address_pb2.TcpKeepalive, {"keepalive_probes", "keepalive_time", "keepalive_interval"})
HTTP_OPTIONS = Fields(hpo_pb2.HttpProtocolOptions, {"common_http_protocol_options", "upstream_http_protocol_options",
                                                    "explicit_http_config", "use_downstream_protocol_config"})
EXPLICIT = Fields(hpo_pb2.HttpProtocolOptions.ExplicitHttpConfig, {"http_protocol_options", "http2_protocol_options"})
DOWNSTREAM = Fields(hpo_pb2.HttpProtocolOptions.UseDownstreamHttpConfig, {"http_protocol_options", "http2_protocol_options"})
COMMON_HTTP = Fields(protocol_pb2.HttpProtocolOptions, {"idle_timeout", "max_connection_duration", "max_headers_count",
                                                        "max_stream_duration", "max_requests_per_connection"})
UPSTREAM_HTTP = Fields(protocol_pb2.UpstreamHttpProtocolOptions, {"auto_sni", "auto_san_validation", "override_auto_sni_header"})
UPSTREAM_HTTP1 = Fields(protocol_pb2.Http1ProtocolOptions, {"enable_trailers"})
UPSTREAM_HTTP2 = Fields(protocol_pb2.Http2ProtocolOptions, {"max_concurrent_streams", "initial_stream_window_size",
                                                            "initial_connection_window_size", "hpack_table_size"})

DISCOVERY = {C.STATIC: "STATIC", C.STRICT_DNS: "STRICT_DNS", C.LOGICAL_DNS: "LOGICAL_DNS", C.EDS: "EDS",
             C.ORIGINAL_DST: "ORIGINAL_DST"}
DNS_FAMILIES = {C.AUTO: "auto", C.V4_ONLY: "v4_only", C.V6_ONLY: "v6_only", C.V4_PREFERRED: "v4_preferred", C.ALL: "all"}


@dataclass(frozen=True, slots=True)
class UpstreamHttpConfig:
    protocol: str = "http1"  # http1 | http2 | downstream (speak what the client spoke)
    idle_timeout: float | None = 3600.0
    max_connection_duration: float | None = None
    max_stream_duration: float | None = None
    max_headers_count: int = 100
    max_requests_per_connection: int | None = None
    max_concurrent_streams: int = 2147483647
    initial_stream_window_size: int = 268435456
    initial_connection_window_size: int = 268435456
    hpack_table_size: int = 4096
    enable_trailers: bool = False  # HTTP/1.1: proxy trailers upstream
    auto_sni: bool = False  # SNI from the (rewritten) Host header
    auto_san_validation: bool = False  # verify the server cert against that host
    override_auto_sni_header: str = ""


@dataclass(frozen=True, slots=True)
class TransportSocketMatchConfig:
    name: str
    match: Mapping[str, Any]
    tls: UpstreamTls | None  # None: plaintext

    def matches(self, endpoint_match: Mapping[str, Any]) -> bool:
        return all(endpoint_match.get(k) == v for k, v in self.match.items())


@dataclass(frozen=True, slots=True)
class OriginalDstConfig:
    use_http_header: bool = False
    http_header_name: str = "x-envoy-original-dst-host"
    upstream_port_override: int | None = None


@dataclass(frozen=True, slots=True)
class TcpKeepaliveConfig:
    probes: int | None = None
    time: int | None = None  # seconds
    interval: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ClusterConfig:
    name: str
    discovery_type: str  # EDS | STATIC | STRICT_DNS | LOGICAL_DNS | ORIGINAL_DST
    eds_service_name: str = ""  # EDS: the ClusterLoadAssignment name to subscribe to
    eds_source: ConfigSourceRef | None = None
    load_assignment: EndpointsConfig | None = None  # inline endpoints (STATIC / DNS)
    lb: LbConfig = LbConfig()
    connect_timeout: float = 5.0
    circuit_breakers: CircuitBreakersConfig = CircuitBreakersConfig()
    outlier_detection: OutlierDetectionConfig | None = None
    tls: UpstreamTls | None = None  # the cluster's transport socket (None: plaintext)
    transport_socket_matches: tuple[TransportSocketMatchConfig, ...] = ()
    http: UpstreamHttpConfig = UpstreamHttpConfig()
    original_dst: OriginalDstConfig | None = None
    cleanup_interval: float = 5.0
    source_address: str | None = None  # upstream bind IP
    source_port: int = 0
    dns_lookup_family: str = "auto"
    dns_refresh_rate: float = 5.0
    respect_dns_ttl: bool = False
    tcp_keepalive: TcpKeepaliveConfig | None = None
    per_connection_buffer_limit_bytes: int = 1024 * 1024
    close_connections_on_host_health_failure: bool = False
    ignore_health_on_host_removal: bool = False
    connection_pool_per_downstream_connection: bool = False
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: EMPTY)

    def transport_for(self, endpoint: EndpointConfig | None) -> UpstreamTls | None:
        """TLS for a connection to `endpoint`: the first transport_socket_match whose
        `match` is a subset of the endpoint's transport-socket-match metadata."""
        if self.transport_socket_matches:
            labels = endpoint.transport_socket_match if endpoint is not None else EMPTY
            for m in self.transport_socket_matches:
                if m.matches(labels):
                    return m.tls
        return self.tls


def _upstream_http(c: C, where: Where) -> UpstreamHttpConfig:
    options = dict(c.typed_extension_protocol_options)
    unknown = [k for k in options if k != HTTP_OPTIONS_KEY]
    if unknown:
        raise where.at("typed_extension_protocol_options").key(unknown[0]).unsupported(
            f"only {HTTP_OPTIONS_KEY} protocol options are supported")
    legacy_max = wrapped(c, "max_requests_per_connection", None)
    downstream = enum({C.USE_CONFIGURED_PROTOCOL: False, C.USE_DOWNSTREAM_PROTOCOL: True}, c, "protocol_selection", where)
    if HTTP_OPTIONS_KEY not in options:
        return UpstreamHttpConfig(protocol="downstream" if downstream else "http1", max_requests_per_connection=legacy_max)
    w = where.at("typed_extension_protocol_options").key(HTTP_OPTIONS_KEY)
    msg = unpack(options[HTTP_OPTIONS_KEY], w, {hpo_pb2.HttpProtocolOptions.DESCRIPTOR.full_name: hpo_pb2.HttpProtocolOptions})
    HTTP_OPTIONS.check(msg, w)
    which = msg.WhichOneof("upstream_protocol_options")
    if which == "explicit_http_config":
        e = msg.explicit_http_config
        EXPLICIT.check(e, w.at(which))
        proto = "http2" if e.HasField("http2_protocol_options") else "http1"
        h1, h2 = e.http_protocol_options, e.http2_protocol_options
    elif which == "use_downstream_protocol_config":
        d = msg.use_downstream_protocol_config
        DOWNSTREAM.check(d, w.at(which))
        proto, h1, h2 = "downstream", d.http_protocol_options, d.http2_protocol_options
    else:
        raise w.unsupported("set explicit_http_config or use_downstream_protocol_config (auto_config is not supported)")
    UPSTREAM_HTTP1.check(h1, w.at(which).at("http_protocol_options"))
    UPSTREAM_HTTP2.check(h2, w.at(which).at("http2_protocol_options"))
    common, up = msg.common_http_protocol_options, msg.upstream_http_protocol_options
    COMMON_HTTP.check(common, w.at("common_http_protocol_options"))
    UPSTREAM_HTTP.check(up, w.at("upstream_http_protocol_options"))
    return UpstreamHttpConfig(
        protocol=proto,
        idle_timeout=timeout(common, "idle_timeout", 3600.0),
        max_connection_duration=timeout(common, "max_connection_duration", None),
        max_stream_duration=timeout(common, "max_stream_duration", None),
        max_headers_count=wrapped(common, "max_headers_count", 100),
        max_requests_per_connection=wrapped(common, "max_requests_per_connection", legacy_max) or None,
        max_concurrent_streams=wrapped(h2, "max_concurrent_streams", 2147483647),
        initial_stream_window_size=wrapped(h2, "initial_stream_window_size", 268435456),
        initial_connection_window_size=wrapped(h2, "initial_connection_window_size", 268435456),
        hpack_table_size=wrapped(h2, "hpack_table_size", 4096),
        enable_trailers=h1.enable_trailers,
        auto_sni=up.auto_sni,
        auto_san_validation=up.auto_san_validation,
        override_auto_sni_header=up.override_auto_sni_header.lower(),
    )


def _discovery(c: C, where: Where, kind: str) -> tuple[str, ConfigSourceRef | None, EndpointsConfig | None]:
    la = load_assignment(c.load_assignment, where.at("load_assignment")) if c.HasField("load_assignment") else None
    if kind == "EDS":
        if not c.HasField("eds_cluster_config"):
            raise where.at("eds_cluster_config").invalid("an EDS cluster needs eds_cluster_config")
        EDS.check(c.eds_cluster_config, where.at("eds_cluster_config"))
        source = config_source(c.eds_cluster_config.eds_config, where.at("eds_cluster_config").at("eds_config"))
        return c.eds_cluster_config.service_name or c.name, source, None
    if kind == "ORIGINAL_DST":
        if la is not None and la.endpoints:
            raise where.at("load_assignment").invalid("an ORIGINAL_DST cluster takes no endpoints")
        return "", None, None
    if kind == "LOGICAL_DNS" and la is not None and len(la.endpoints) != 1:
        raise where.at("load_assignment").invalid("a LOGICAL_DNS cluster needs exactly one endpoint")
    if kind == "STATIC" and la is not None:
        for i, ep in enumerate(la.endpoints):
            if not ep.address.pipe and parse_ip(ep.address.host) is None:
                raise where.at("load_assignment").invalid(f"STATIC endpoint {i} ({ep.address.host!r}) is not an IP address")
    return "", None, la


def compile_cluster(msg: C) -> ClusterConfig:
    where = Where(CLUSTER_TYPE_URL, msg.name)
    CLUSTER.check(msg, where)
    if not msg.name:
        raise where.at("name").invalid("a cluster needs a name")
    if msg.WhichOneof("cluster_discovery_type") == "cluster_type":
        raise where.at("cluster_type").unsupported("custom cluster types are not supported")
    kind = enum(DISCOVERY, msg, "type", where)
    lb = lb_config(msg, where)
    if (kind == "ORIGINAL_DST") != (lb.policy == "cluster_provided"):
        raise where.at("lb_policy").invalid("ORIGINAL_DST clusters need lb_policy CLUSTER_PROVIDED, and only they may use it")
    eds_name, eds_source, la = _discovery(msg, where, kind)
    original = None
    if msg.HasField("original_dst_lb_config"):
        o, w = msg.original_dst_lb_config, where.at("original_dst_lb_config")
        ORIGINAL_DST.check(o, w)
        original = OriginalDstConfig(o.use_http_header, o.http_header_name.lower() or "x-envoy-original-dst-host",
                                     wrapped(o, "upstream_port_override", None))
    elif kind == "ORIGINAL_DST":
        original = OriginalDstConfig()
    source_address, source_port = None, 0
    if msg.HasField("upstream_bind_config"):
        b, w = msg.upstream_bind_config, where.at("upstream_bind_config")
        BIND.check(b, w)
        SOCKET_ADDRESS.check(b.source_address, w.at("source_address"))
        source_address, source_port = b.source_address.address, b.source_address.port_value
    keepalive = None
    if msg.HasField("upstream_connection_options"):
        o, w = msg.upstream_connection_options, where.at("upstream_connection_options")
        CONNECTION_OPTIONS.check(o, w)
        if o.HasField("tcp_keepalive"):
            k = o.tcp_keepalive
            KEEPALIVE.check(k, w.at("tcp_keepalive"))
            keepalive = TcpKeepaliveConfig(wrapped(k, "keepalive_probes", None), wrapped(k, "keepalive_time", None),
                                           wrapped(k, "keepalive_interval", None))
    tls = transport_socket(msg.transport_socket, where.at("transport_socket"), upstream=True) if msg.HasField("transport_socket") else None
    matches = []
    for i, m in enumerate(msg.transport_socket_matches):
        w = where.at("transport_socket_matches").idx(i)
        TRANSPORT_SOCKET_MATCH.check(m, w)
        if not m.HasField("transport_socket"):
            raise w.at("transport_socket").invalid("a transport socket match needs a transport_socket")
        matches.append(TransportSocketMatchConfig(m.name, struct_dict(m.match) if m.HasField("match") else {},
                                                  transport_socket(m.transport_socket, w.at("transport_socket"), upstream=True)))  # type: ignore[arg-type]
    return ClusterConfig(
        name=msg.name,
        discovery_type=kind,
        eds_service_name=eds_name,
        eds_source=eds_source,
        load_assignment=la,
        lb=lb,
        connect_timeout=opt_seconds(msg, "connect_timeout", 5.0),
        circuit_breakers=circuit_breakers(msg.circuit_breakers, where.at("circuit_breakers")) if msg.HasField("circuit_breakers") else CircuitBreakersConfig(),
        outlier_detection=outlier_detection(msg.outlier_detection, where.at("outlier_detection")) if msg.HasField("outlier_detection") else None,
        tls=tls,  # type: ignore[arg-type]
        transport_socket_matches=tuple(matches),
        http=_upstream_http(msg, where),
        original_dst=original,
        cleanup_interval=opt_seconds(msg, "cleanup_interval", 5.0),
        source_address=source_address,
        source_port=source_port,
        dns_lookup_family=enum(DNS_FAMILIES, msg, "dns_lookup_family", where),
        dns_refresh_rate=opt_seconds(msg, "dns_refresh_rate", 5.0),
        respect_dns_ttl=msg.respect_dns_ttl,
        tcp_keepalive=keepalive,
        per_connection_buffer_limit_bytes=wrapped(msg, "per_connection_buffer_limit_bytes", 1024 * 1024),
        close_connections_on_host_health_failure=msg.close_connections_on_host_health_failure,
        ignore_health_on_host_removal=msg.ignore_health_on_host_removal,
        connection_pool_per_downstream_connection=msg.connection_pool_per_downstream_connection,
        metadata=metadata(msg.metadata, where.at("metadata")) if msg.HasField("metadata") else EMPTY,
    )
