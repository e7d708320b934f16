"""LDS: Listener → `ListenerConfig` (address, listener filters, filter chains, selection).

Listener filters: tls_inspector (SNI/ALPN/transport protocol), original_dst
(SO_ORIGINAL_DST), http_inspector (HTTP ALPN for plaintext). Each `FilterChainConfig`
has its match, downstream TLS (or None for plaintext) and one terminal network filter
(HCM or tcp_proxy). `ListenerConfig.select_chain(...)` is Envoy's filter-chain match
(filter_chain_match.py), falling back to default_filter_chain.
"""
from __future__ import annotations

from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2

from isthmus.proxy.config.access_log import AccessLogConfig, access_logs
from isthmus.proxy.config.common import Address, address, by_name, enum, opt_seconds, timeout, unpack, wrapped
from isthmus.proxy.config.errors import Fields, Where
from isthmus.proxy.config.filter_chain_match import (
    ChainSelector, Connection, FilterChainMatchConfig, IPAddress, compile_chain_match, parse_ip,
)
from isthmus.proxy.config.network_filters import (
    HttpConnectionManagerConfig, NetworkFilterConfig, TcpProxyConfig, network_filters,
)
from isthmus.proxy.config.tls import DownstreamTls, transport_socket

LISTENER_TYPE_URL = "type.googleapis.com/envoy.config.listener.v3.Listener"

LISTENER = Fields(listener_pb2.Listener, {
    "name", "address", "filter_chains", "use_original_dst", "default_filter_chain", "per_connection_buffer_limit_bytes",
    "listener_filters", "listener_filters_timeout", "continue_on_listener_filters_timeout", "traffic_direction",
    "access_log", "tcp_backlog_size", "bind_to_port",
}, {
    "stat_prefix": "stats only", "metadata": "not consulted by any isthmus filter",
    "drain_type": "listener draining is always graceful (DEFAULT)",
    "enable_reuse_port": "socket performance option", "reuse_port": "deprecated socket performance option",
    "max_connections_to_accept_per_socket_event": "accept-loop tuning",
    "ignore_global_conn_limit": "no global connection limit in the isthmus proxy",
    "bypass_overload_manager": "no overload manager in the isthmus proxy",
})
FILTER_CHAIN = Fields(lc.FilterChain, {"filter_chain_match", "filters", "transport_socket",
                                       "transport_socket_connect_timeout", "name"},
                      {"metadata": "not consulted by any isthmus filter"})
LISTENER_FILTER = Fields(lc.ListenerFilter, {"name", "typed_config"})
TLS_INSPECTOR = Fields(tls_inspector_pb2.TlsInspector, {"max_client_hello_size"}, {
    "enable_ja3_fingerprinting": "fingerprints are only logged", "enable_ja4_fingerprinting": "fingerprints are only logged",
    "initial_read_buffer_size": "read buffer tuning",
    "close_connection_on_client_hello_parsing_errors": "the runtime always closes on a malformed ClientHello",
})
ORIGINAL_DST = Fields(original_dst_pb2.OriginalDst, ())
HTTP_INSPECTOR = Fields(http_inspector_pb2.HttpInspector, ())
LISTENER_FILTERS = by_name(tls_inspector_pb2.TlsInspector, original_dst_pb2.OriginalDst, http_inspector_pb2.HttpInspector)
KINDS = {tls_inspector_pb2.TlsInspector: "tls_inspector", original_dst_pb2.OriginalDst: "original_dst",
         http_inspector_pb2.HttpInspector: "http_inspector"}
DIRECTIONS = {base_pb2.UNSPECIFIED: "unspecified", base_pb2.INBOUND: "inbound", base_pb2.OUTBOUND: "outbound"}
DEFAULT_BUFFER_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ListenerFilterConfig:
    name: str
    kind: str  # tls_inspector | original_dst | http_inspector
    max_client_hello_size: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class FilterChainConfig:
    name: str
    match: FilterChainMatchConfig
    tls: DownstreamTls | None  # None: plaintext
    filter: NetworkFilterConfig
    transport_socket_connect_timeout: float | None = None

    @property
    def http(self) -> HttpConnectionManagerConfig | None:
        return self.filter if isinstance(self.filter, HttpConnectionManagerConfig) else None

    @property
    def tcp(self) -> TcpProxyConfig | None:
        return self.filter if isinstance(self.filter, TcpProxyConfig) else None


@dataclass(frozen=True, slots=True, eq=False)
class ListenerConfig:
    name: str
    address: Address
    bind_to_port: bool = True
    use_original_dst: bool = False
    listener_filters: tuple[ListenerFilterConfig, ...] = ()
    listener_filters_timeout: float | None = 15.0  # None: wait forever
    continue_on_listener_filters_timeout: bool = False
    filter_chains: tuple[FilterChainConfig, ...] = ()
    default_filter_chain: FilterChainConfig | None = None
    traffic_direction: str = "unspecified"
    per_connection_buffer_limit_bytes: int = DEFAULT_BUFFER_LIMIT
    tcp_backlog_size: int | None = None
    access_logs: tuple[AccessLogConfig, ...] = ()
    _selector: ChainSelector | None = None

    def has_filter(self, kind: str) -> bool:
        return any(f.kind == kind for f in self.listener_filters)

    def all_chains(self) -> tuple[FilterChainConfig, ...]:
        return self.filter_chains + ((self.default_filter_chain,) if self.default_filter_chain else ())

    def select_chain(self, dest_port: int | None = None, server_name: str = "", transport_protocol: str = "raw_buffer",
                     alpn: tuple[str, ...] = (), source_ip: str | IPAddress | None = None, *,
                     dest_ip: str | IPAddress | None = None,
                     source_port: int = 0) -> FilterChainConfig | None:
        """The chain Envoy picks for a connection, else default_filter_chain, else None (close)."""
        chain = None
        selector = self._selector
        if selector is not None:
            ips = selector.uses_ips
            conn = Connection(dest_port, parse_ip(dest_ip) if ips else None, server_name.lower(), transport_protocol,
                              tuple(alpn), parse_ip(source_ip) if ips else None, source_port)
            chain = selector.select(conn)
        return chain if chain is not None else self.default_filter_chain


def _listener_filter(msg: lc.ListenerFilter, where: Where) -> ListenerFilterConfig:
    LISTENER_FILTER.check(msg, where)
    if not msg.HasField("typed_config"):
        raise where.at("typed_config").invalid(f"listener filter {msg.name!r} needs a typed_config")
    cfg = unpack(msg.typed_config, where.at("typed_config"), LISTENER_FILTERS)
    kind = KINDS[type(cfg)]
    w = where.at("typed_config")
    if kind == "tls_inspector":
        TLS_INSPECTOR.check(cfg, w)
        return ListenerFilterConfig(msg.name, kind, wrapped(cfg, "max_client_hello_size", None))
    (ORIGINAL_DST if kind == "original_dst" else HTTP_INSPECTOR).check(cfg, w)
    return ListenerFilterConfig(msg.name, kind)


def _filter_chain(msg: lc.FilterChain, where: Where) -> FilterChainConfig:
    FILTER_CHAIN.check(msg, where)
    match = compile_chain_match(msg.filter_chain_match, where.at("filter_chain_match"))
    tls = None
    if msg.HasField("transport_socket"):
        tls = transport_socket(msg.transport_socket, where.at("transport_socket"), upstream=False)
    return FilterChainConfig(
        name=msg.name,
        match=match,
        tls=tls,  # type: ignore[arg-type]
        filter=network_filters(msg.filters, where.at("filters")),
        transport_socket_connect_timeout=opt_seconds(msg, "transport_socket_connect_timeout"),
    )


def compile_listener(msg: listener_pb2.Listener) -> ListenerConfig:
    where = Where(LISTENER_TYPE_URL, msg.name)
    LISTENER.check(msg, where)
    if not msg.HasField("address"):
        raise where.at("address").invalid("a listener needs an address")
    addr = address(msg.address, where.at("address"))
    filters = tuple(_listener_filter(f, where.at("listener_filters").idx(i)) for i, f in enumerate(msg.listener_filters))
    chains = tuple(_filter_chain(c, where.at("filter_chains").idx(i)) for i, c in enumerate(msg.filter_chains))
    default = _filter_chain(msg.default_filter_chain, where.at("default_filter_chain")) if msg.HasField("default_filter_chain") else None
    if not chains and default is None:
        raise where.at("filter_chains").invalid("a listener needs at least one filter chain or a default_filter_chain")
    selector = ChainSelector([(c.match, c) for c in chains], where.at("filter_chains")) if chains else None
    return ListenerConfig(
        name=msg.name,
        address=addr,
        bind_to_port=wrapped(msg, "bind_to_port", True),
        use_original_dst=wrapped(msg, "use_original_dst", False),
        listener_filters=filters,
        listener_filters_timeout=timeout(msg, "listener_filters_timeout", 15.0),
        continue_on_listener_filters_timeout=msg.continue_on_listener_filters_timeout,
        filter_chains=chains,
        default_filter_chain=default,
        traffic_direction=enum(DIRECTIONS, msg, "traffic_direction", where),
        per_connection_buffer_limit_bytes=wrapped(msg, "per_connection_buffer_limit_bytes", DEFAULT_BUFFER_LIMIT),
        tcp_backlog_size=wrapped(msg, "tcp_backlog_size", None),
        access_logs=access_logs(msg.access_log, where.at("access_log")),
        _selector=selector,
    )
