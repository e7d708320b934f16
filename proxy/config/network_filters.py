"""A filter chain's terminal network filter: HTTP connection manager or TCP proxy.

`HttpConnectionManagerConfig` carries everything the runtime's HTTP path needs
(codec, RDS name or inline `RouteTable`, the HTTP filter list, access logs, request
ids, tracing sampling, header limits, XFF/XFCC handling, timeouts; Envoy's defaults
where unset, None = disabled). `TcpProxyConfig` picks a cluster (or weighted clusters).
"""
from __future__ import annotations

from dataclasses import dataclass

from envoy.config.core.v3 import protocol_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from isthmus.proxy.config.access_log import AccessLogConfig, access_logs
from isthmus.proxy.config.common import ConfigSourceRef, by_name, config_source, enum, opt_seconds, timeout, unpack, wrapped
from isthmus.proxy.config.errors import Fields, Where
from isthmus.proxy.config.http_filters import HttpFilterConfig, http_filters
from isthmus.proxy.config.routes import RouteTable, compile_route_table

H = hcm_pb2.HttpConnectionManager
FILTER = Fields(listener_components_pb2.Filter, {"name", "typed_config"})
HCM = Fields(H, {
    "codec_type", "stat_prefix", "rds", "route_config", "http_filters", "add_user_agent", "tracing",
    "common_http_protocol_options", "http_protocol_options", "http2_protocol_options", "server_name",
    "server_header_transformation", "max_request_headers_kb", "stream_idle_timeout", "request_timeout",
    "request_headers_timeout", "drain_timeout", "delayed_close_timeout", "access_log", "use_remote_address",
    "xff_num_trusted_hops", "skip_xff_append", "via", "generate_request_id", "preserve_external_request_id",
    "always_set_request_id_in_response", "forward_client_cert_details", "set_current_client_cert_details",
    "proxy_100_continue", "upgrade_configs", "normalize_path", "merge_slashes", "path_with_escaped_slashes_action",
    "strip_matching_host_port", "strip_any_host_port", "stream_error_on_invalid_http_message",
    "strip_trailing_host_dot", "append_x_forwarded_port",
})
RDS = Fields(hcm_pb2.Rds, {"config_source", "route_config_name"})
TRACING = Fields(H.Tracing, {"client_sampling", "random_sampling", "overall_sampling", "verbose", "max_path_tag_length"},
                 {"spawn_upstream_span": "span layout only"})
XFCC_DETAILS = Fields(H.SetCurrentClientCertDetails, {"subject", "cert", "chain", "dns", "uri"})
UPGRADE = Fields(H.UpgradeConfig, {"upgrade_type", "enabled"})
COMMON_HTTP = Fields(protocol_pb2.HttpProtocolOptions, {
    "idle_timeout", "max_connection_duration", "max_headers_count", "max_stream_duration",
    "headers_with_underscores_action", "max_requests_per_connection", "max_response_headers_kb",
})
HTTP1 = Fields(protocol_pb2.Http1ProtocolOptions, {
    "allow_absolute_url", "accept_http_10", "default_host_for_http_10", "enable_trailers", "allow_chunked_length",
    "override_stream_error_on_invalid_http_message",
}, {"use_balsa_parser": "parser choice of Envoy's C++ codec",
    "send_fully_qualified_url": "applies to upstream connections only; no effect on a listener"})
HTTP2 = Fields(protocol_pb2.Http2ProtocolOptions, {
    "hpack_table_size", "max_concurrent_streams", "initial_stream_window_size", "initial_connection_window_size",
    "stream_error_on_invalid_http_messaging", "override_stream_error_on_invalid_http_message",
}, {"max_outbound_frames": "flood protection limits of Envoy's codec",
    "max_outbound_control_frames": "flood protection limits of Envoy's codec",
    "max_consecutive_inbound_frames_with_empty_payload": "flood protection limits of Envoy's codec",
    "max_inbound_priority_frames_per_stream": "flood protection limits of Envoy's codec",
    "max_inbound_window_update_frames_per_data_frame_sent": "flood protection limits of Envoy's codec",
    "use_oghttp2_codec": "codec choice of Envoy's C++ build"})
TCP_PROXY = Fields(tcp_proxy_pb2.TcpProxy, {
    "stat_prefix", "cluster", "weighted_clusters", "idle_timeout", "downstream_idle_timeout", "upstream_idle_timeout",
    "access_log", "max_connect_attempts", "hash_policy", "max_downstream_connection_duration",
})
TCP_WEIGHTED = Fields(tcp_proxy_pb2.TcpProxy.WeightedCluster, {"clusters"})
TCP_CLUSTER_WEIGHT = Fields(tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight, {"name", "weight"})
NETWORK_FILTERS = by_name(H, tcp_proxy_pb2.TcpProxy)

CODECS = {H.AUTO: "auto", H.HTTP1: "http1", H.HTTP2: "http2"}
XFCC = {H.SANITIZE: "sanitize", H.FORWARD_ONLY: "forward_only", H.APPEND_FORWARD: "append_forward",
        H.SANITIZE_SET: "sanitize_set", H.ALWAYS_FORWARD_ONLY: "always_forward_only"}
SERVER_HEADER = {H.OVERWRITE: "overwrite", H.APPEND_IF_ABSENT: "append_if_absent", H.PASS_THROUGH: "pass_through"}
ESCAPED_SLASHES = {H.IMPLEMENTATION_SPECIFIC_DEFAULT: "keep_unchanged", H.KEEP_UNCHANGED: "keep_unchanged",
                   H.REJECT_REQUEST: "reject_request", H.UNESCAPE_AND_REDIRECT: "unescape_and_redirect",
                   H.UNESCAPE_AND_FORWARD: "unescape_and_forward"}
UNDERSCORES = {protocol_pb2.HttpProtocolOptions.ALLOW: "allow", protocol_pb2.HttpProtocolOptions.REJECT_REQUEST: "reject_request",
               protocol_pb2.HttpProtocolOptions.DROP_HEADER: "drop_header"}


@dataclass(frozen=True, slots=True)
class TracingConfig:
    client_sampling: float = 100.0  # percent
    random_sampling: float = 100.0
    overall_sampling: float = 100.0
    verbose: bool = False
    max_path_tag_length: int = 256


@dataclass(frozen=True, slots=True)
class XfccDetails:
    subject: bool = False
    cert: bool = False
    chain: bool = False
    dns: bool = False
    uri: bool = False


@dataclass(frozen=True, slots=True)
class HttpConnectionManagerConfig:
    stat_prefix: str
    codec_type: str = "auto"  # auto | http1 | http2
    rds_name: str = ""  # exactly one of rds_name / route_table
    rds_source: ConfigSourceRef | None = None
    route_table: RouteTable | None = None
    http_filters: tuple[HttpFilterConfig, ...] = ()
    access_logs: tuple[AccessLogConfig, ...] = ()
    generate_request_id: bool = True
    preserve_external_request_id: bool = False
    always_set_request_id_in_response: bool = False
    tracing: TracingConfig | None = None  # None: tracing off
    add_user_agent: bool = False
    server_name: str = "envoy"
    server_header_transformation: str = "overwrite"
    max_request_headers_kb: int = 60
    max_headers_count: int = 100
    max_response_headers_kb: int | None = None
    headers_with_underscores_action: str = "allow"
    idle_timeout: float | None = 3600.0  # connection idle; None = disabled
    max_connection_duration: float | None = None
    max_stream_duration: float | None = None
    max_requests_per_connection: int | None = None
    stream_idle_timeout: float | None = 300.0
    request_timeout: float | None = None
    request_headers_timeout: float | None = None
    drain_timeout: float = 5.0
    delayed_close_timeout: float | None = 1.0
    use_remote_address: bool = False
    xff_num_trusted_hops: int = 0
    skip_xff_append: bool = False
    append_x_forwarded_port: bool = False
    via: str = ""
    forward_client_cert_details: str = "sanitize"
    set_current_client_cert_details: XfccDetails = XfccDetails()
    proxy_100_continue: bool = False
    upgrades: tuple[tuple[str, bool], ...] = ()  # (upgrade type, enabled by default)
    normalize_path: bool = False
    merge_slashes: bool = False
    path_with_escaped_slashes_action: str = "keep_unchanged"
    strip_port_mode: str = "none"  # none | matching (the listener's port) | any
    strip_trailing_host_dot: bool = False
    stream_error_on_invalid_http_message: bool = False  # reset only the stream (not the connection) on bad input
    http1_stream_error_on_invalid_message: bool = False  # the above, with the HTTP/1 override applied
    http2_stream_error_on_invalid_message: bool = False  # the above, with the HTTP/2 settings applied
    # HTTP/1.1 (http_protocol_options)
    allow_absolute_url: bool = False
    accept_http_10: bool = False
    default_host_for_http_10: str = ""
    enable_trailers: bool = False
    allow_chunked_length: bool = False
    # HTTP/2 (http2_protocol_options)
    http2_max_concurrent_streams: int = 2147483647
    http2_initial_stream_window_size: int = 268435456
    http2_initial_connection_window_size: int = 268435456
    http2_hpack_table_size: int = 4096


@dataclass(frozen=True, slots=True)
class TcpProxyConfig:
    stat_prefix: str
    cluster: str = ""  # exactly one of cluster / weighted_clusters
    weighted_clusters: tuple[tuple[str, int], ...] = ()
    idle_timeout: float | None = 3600.0
    downstream_idle_timeout: float | None = None
    upstream_idle_timeout: float | None = None
    max_connect_attempts: int = 1
    hash_by_source_ip: bool = False
    max_downstream_connection_duration: float | None = None
    access_logs: tuple[AccessLogConfig, ...] = ()

    def pick(self, random_value: int) -> str:
        if self.cluster:
            return self.cluster
        total = sum(w for _, w in self.weighted_clusters)
        selected, end = random_value % total, 0
        for name, weight in self.weighted_clusters:
            end += weight
            if selected < end:
                return name
        return self.weighted_clusters[-1][0]


NetworkFilterConfig = HttpConnectionManagerConfig | TcpProxyConfig


def _percent(msg, name: str) -> float:
    return getattr(msg, name).value if msg.HasField(name) else 100.0


def _tracing(msg: H.Tracing, where: Where) -> TracingConfig:
    TRACING.check(msg, where)
    return TracingConfig(_percent(msg, "client_sampling"), _percent(msg, "random_sampling"), _percent(msg, "overall_sampling"),
                         msg.verbose, wrapped(msg, "max_path_tag_length", 256))


def http_connection_manager(msg: H, where: Where) -> HttpConnectionManagerConfig:
    HCM.check(msg, where)
    which = msg.WhichOneof("route_specifier")
    rds_name, rds_source, table = "", None, None
    if which == "rds":
        RDS.check(msg.rds, where.at("rds"))
        if not msg.rds.route_config_name:
            raise where.at("rds").at("route_config_name").invalid("RDS needs a route_config_name")
        rds_name, rds_source = msg.rds.route_config_name, config_source(msg.rds.config_source, where.at("rds").at("config_source"))
    elif which == "route_config":
        table = compile_route_table(msg.route_config, where.at("route_config"))
    else:
        raise where.invalid("an HTTP connection manager needs rds or route_config")
    common, cw = msg.common_http_protocol_options, where.at("common_http_protocol_options")
    COMMON_HTTP.check(common, cw)
    h1 = msg.http_protocol_options
    HTTP1.check(h1, where.at("http_protocol_options"))
    h2 = msg.http2_protocol_options
    HTTP2.check(h2, where.at("http2_protocol_options"))
    xfcc = msg.set_current_client_cert_details
    XFCC_DETAILS.check(xfcc, where.at("set_current_client_cert_details"))
    upgrades = []
    for i, u in enumerate(msg.upgrade_configs):
        UPGRADE.check(u, where.at("upgrade_configs").idx(i))
        upgrades.append((u.upgrade_type.lower(), wrapped(u, "enabled", True)))
    strip = msg.WhichOneof("strip_port_mode")
    stream_error = wrapped(msg, "stream_error_on_invalid_http_message", False)
    h2_stream_error = wrapped(h2, "override_stream_error_on_invalid_http_message", h2.stream_error_on_invalid_http_messaging or stream_error)
    return HttpConnectionManagerConfig(
        stat_prefix=msg.stat_prefix,
        codec_type=enum(CODECS, msg, "codec_type", where),
        rds_name=rds_name,
        rds_source=rds_source,
        route_table=table,
        http_filters=http_filters(msg.http_filters, where.at("http_filters")),
        access_logs=access_logs(msg.access_log, where.at("access_log")),
        generate_request_id=wrapped(msg, "generate_request_id", True),
        preserve_external_request_id=msg.preserve_external_request_id,
        always_set_request_id_in_response=msg.always_set_request_id_in_response,
        tracing=_tracing(msg.tracing, where.at("tracing")) if msg.HasField("tracing") else None,
        add_user_agent=wrapped(msg, "add_user_agent", False),
        server_name=msg.server_name or "envoy",
        server_header_transformation=enum(SERVER_HEADER, msg, "server_header_transformation", where),
        max_request_headers_kb=wrapped(msg, "max_request_headers_kb", 60),
        max_headers_count=wrapped(common, "max_headers_count", 100),
        max_response_headers_kb=wrapped(common, "max_response_headers_kb", None),
        headers_with_underscores_action=enum(UNDERSCORES, common, "headers_with_underscores_action", cw),
        idle_timeout=timeout(common, "idle_timeout", 3600.0),
        max_connection_duration=timeout(common, "max_connection_duration", None),
        max_stream_duration=timeout(common, "max_stream_duration", None),
        max_requests_per_connection=wrapped(common, "max_requests_per_connection", None) or None,
        stream_idle_timeout=timeout(msg, "stream_idle_timeout", 300.0),
        request_timeout=timeout(msg, "request_timeout", None),
        request_headers_timeout=timeout(msg, "request_headers_timeout", None),
        drain_timeout=opt_seconds(msg, "drain_timeout", 5.0),
        delayed_close_timeout=timeout(msg, "delayed_close_timeout", 1.0),
        use_remote_address=wrapped(msg, "use_remote_address", False),
        xff_num_trusted_hops=msg.xff_num_trusted_hops,
        skip_xff_append=msg.skip_xff_append,
        append_x_forwarded_port=msg.append_x_forwarded_port,
        via=msg.via,
        forward_client_cert_details=enum(XFCC, msg, "forward_client_cert_details", where),
        set_current_client_cert_details=XfccDetails(wrapped(xfcc, "subject", False), xfcc.cert, xfcc.chain, xfcc.dns, xfcc.uri),
        proxy_100_continue=msg.proxy_100_continue,
        upgrades=tuple(upgrades),
        normalize_path=wrapped(msg, "normalize_path", False),
        merge_slashes=msg.merge_slashes,
        path_with_escaped_slashes_action=enum(ESCAPED_SLASHES, msg, "path_with_escaped_slashes_action", where),
        strip_port_mode={"strip_matching_host_port": "matching", "strip_any_host_port": "any"}.get(strip or "", "none")
        if (strip and getattr(msg, strip)) else "none",
        strip_trailing_host_dot=msg.strip_trailing_host_dot,
        stream_error_on_invalid_http_message=stream_error,
        http1_stream_error_on_invalid_message=wrapped(h1, "override_stream_error_on_invalid_http_message", stream_error),
        http2_stream_error_on_invalid_message=h2_stream_error,
        allow_absolute_url=wrapped(h1, "allow_absolute_url", False),
        accept_http_10=h1.accept_http_10,
        default_host_for_http_10=h1.default_host_for_http_10,
        enable_trailers=h1.enable_trailers,
        allow_chunked_length=h1.allow_chunked_length,
        http2_max_concurrent_streams=wrapped(h2, "max_concurrent_streams", 2147483647),
        http2_initial_stream_window_size=wrapped(h2, "initial_stream_window_size", 268435456),
        http2_initial_connection_window_size=wrapped(h2, "initial_connection_window_size", 268435456),
        http2_hpack_table_size=wrapped(h2, "hpack_table_size", 4096),
    )


def tcp_proxy(msg: tcp_proxy_pb2.TcpProxy, where: Where) -> TcpProxyConfig:
    TCP_PROXY.check(msg, where)
    which = msg.WhichOneof("cluster_specifier")
    weighted: tuple[tuple[str, int], ...] = ()
    if which == "weighted_clusters":
        TCP_WEIGHTED.check(msg.weighted_clusters, where.at(which))
        for i, c in enumerate(msg.weighted_clusters.clusters):
            TCP_CLUSTER_WEIGHT.check(c, where.at(which).at("clusters").idx(i))
        weighted = tuple((c.name, c.weight) for c in msg.weighted_clusters.clusters)
        if sum(w for _, w in weighted) <= 0:
            raise where.at(which).invalid("the sum of cluster weights must be greater than 0")
    elif which != "cluster" or not msg.cluster:
        raise where.invalid("tcp_proxy needs cluster or weighted_clusters")
    by_source = False
    for i, h in enumerate(msg.hash_policy):
        if h.WhichOneof("policy_specifier") != "source_ip":
            raise where.at("hash_policy").idx(i).unsupported("tcp_proxy hashes only on source_ip")
        by_source = True
    return TcpProxyConfig(
        stat_prefix=msg.stat_prefix,
        cluster=msg.cluster if which == "cluster" else "",
        weighted_clusters=weighted,
        idle_timeout=timeout(msg, "idle_timeout", 3600.0),
        downstream_idle_timeout=timeout(msg, "downstream_idle_timeout", None),
        upstream_idle_timeout=timeout(msg, "upstream_idle_timeout", None),
        max_connect_attempts=wrapped(msg, "max_connect_attempts", 1),
        hash_by_source_ip=by_source,
        max_downstream_connection_duration=timeout(msg, "max_downstream_connection_duration", None),
        access_logs=access_logs(msg.access_log, where.at("access_log")),
    )


def network_filters(filters, where: Where) -> NetworkFilterConfig:
    """A chain's filters: exactly one, the terminal HCM or tcp_proxy (the only ones we run)."""
    if len(filters) != 1:
        raise where.unsupported(f"exactly one network filter (http_connection_manager or tcp_proxy) is supported, got {len(filters)}")
    f, w = filters[0], where.idx(0)
    FILTER.check(f, w)
    cfg = unpack(f.typed_config, w.at("typed_config"), NETWORK_FILTERS)
    if isinstance(cfg, H):
        return http_connection_manager(cfg, w.at("typed_config"))
    return tcp_proxy(cfg, w.at("typed_config"))
