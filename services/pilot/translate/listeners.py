"""LDS for sidecars: outbound and inbound listeners for both capture modes.

explicit  — `http_proxy` on 127.0.0.1:OUTBOUND_PORT (the app's HTTP_PROXY; RDS
            `http_proxy` covers every HTTP service port, as Istio's Sidecar egress
            listener with captureMode NONE and protocol HTTP_PROXY), and one inbound
            listener per workload port on the proxy's address:proxy_port.
iptables  — `virtualOutbound` 0.0.0.0:15001 and `virtualInbound` 0.0.0.0:15006
            (original destination), per-port outbound listeners (`0.0.0.0_9080`,
            RDS `9080`; TCP services `VIP_PORT` → tcp_proxy), not bound to ports.
Inbound TLS follows the effective PeerAuthentication mode: STRICT (TLS only),
PERMISSIVE (TLS inspector: TLS and plaintext chains), DISABLE (plaintext).
Gateways (router proxies) get their listeners from translate/gateway.py.
"""
from __future__ import annotations

from google.protobuf import wrappers_pb2
from google.protobuf.duration_pb2 import Duration

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from isthmus.pilot.model.peer_authn import MtlsMode, effective_mode
from isthmus.pilot.model.proxy import CaptureMode, Proxy, WorkloadPort
from isthmus.pilot.model.push_context import PushContext
from isthmus.pilot.model.service import Protocol, Resolution
from isthmus.pilot.model.sidecar_scope import egress_services, outbound_traffic_policy
from isthmus.pilot.translate import naming
from isthmus.pilot.translate.hcm import access_logs, hcm_filter, http_connection_manager, pack

ISTIO_ALPN = ("istio-peer-exchange", "istio", "h2", "http/1.1")


def _address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=ip, port_value=port))


def _tcp_proxy(stat_prefix: str, cluster: str, proxy: Proxy, push: PushContext) -> listener_components_pb2.Filter:
    tp = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster, access_log=access_logs(push.mesh))
    return listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy", typed_config=pack(tp))


def _listener_filter(name: str, config) -> listener_components_pb2.ListenerFilter:
    return listener_components_pb2.ListenerFilter(name=name, typed_config=pack(config))


def _tls_inspector() -> listener_components_pb2.ListenerFilter:
    return _listener_filter("envoy.filters.listener.tls_inspector", tls_inspector_pb2.TlsInspector())


def _original_dst() -> listener_components_pb2.ListenerFilter:
    return _listener_filter("envoy.filters.listener.original_dst", original_dst_pb2.OriginalDst())


def _workload_protocol(wp: WorkloadPort) -> Protocol:
    return Protocol.parse(wp.protocol, wp.name)


# ---- inbound -----------------------------------------------------------------------

def _inbound_route(port: int) -> route_pb2.RouteConfiguration:
    cluster = naming.inbound_cluster(port)
    return route_pb2.RouteConfiguration(
        name=cluster,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name=f"inbound|http|{port}",
                domains=["*"],
                routes=[
                    route_components_pb2.Route(
                        name="default",
                        match=route_components_pb2.RouteMatch(prefix="/"),
                        route=route_components_pb2.RouteAction(
                            cluster=cluster, timeout=Duration(seconds=0),
                            max_stream_duration=route_components_pb2.RouteAction.MaxStreamDuration(
                                max_stream_duration=Duration(seconds=0), grpc_timeout_header_max=Duration(seconds=0)
                            ),
                        ),
                        decorator=route_components_pb2.Decorator(operation=f"{cluster}/*"),
                    )
                ],
            )
        ],
    )


def _inbound_filters(wp: WorkloadPort, proxy: Proxy, push: PushContext) -> list[listener_components_pb2.Filter]:
    cluster = naming.inbound_cluster(wp.port)
    if _workload_protocol(wp).is_http or _workload_protocol(wp) is Protocol.UNSUPPORTED:
        hcm = http_connection_manager(f"inbound_0.0.0.0_{wp.port}", push.mesh, route_config=_inbound_route(wp.port), inbound=True)
        return [hcm_filter(hcm)]
    return [_tcp_proxy(cluster, cluster, proxy, push)]


def _inbound_chains(wp: WorkloadPort, proxy: Proxy, push: PushContext, match_port: bool) -> list[listener_components_pb2.FilterChain]:
    from isthmus.pilot.translate.tls import downstream_tls_context  # clusters engineer's module

    mode = effective_mode(push, proxy.namespace, proxy.labels, wp.port)
    filters = _inbound_filters(wp, proxy, push)
    base = listener_components_pb2.FilterChainMatch()
    if match_port:
        base.destination_port.value = wp.proxy_port or wp.port
    chains = []
    if mode in (MtlsMode.STRICT, MtlsMode.PERMISSIVE):
        m = listener_components_pb2.FilterChainMatch()
        m.CopyFrom(base)
        m.transport_protocol = "tls"
        tls = downstream_tls_context(require_client_cert=True, alpn=("h2", "http/1.1"))
        chains.append(listener_components_pb2.FilterChain(
            name=f"{naming.inbound_cluster(wp.port)}-mtls",
            filter_chain_match=m,
            filters=filters,
            transport_socket=base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=pack(tls)),
        ))
    if mode in (MtlsMode.PERMISSIVE, MtlsMode.DISABLE):
        m = listener_components_pb2.FilterChainMatch()
        m.CopyFrom(base)
        if mode is MtlsMode.PERMISSIVE:
            m.transport_protocol = "raw_buffer"
        chains.append(listener_components_pb2.FilterChain(
            name=f"{naming.inbound_cluster(wp.port)}-plaintext", filter_chain_match=m, filters=filters
        ))
    return chains


def _explicit_inbound(proxy: Proxy, push: PushContext) -> list[listener_pb2.Listener]:
    ip = proxy.ip_addresses[0] if proxy.ip_addresses else "127.0.0.1"
    out = []
    for wp in proxy.ports:
        port = wp.proxy_port or wp.port
        out.append(listener_pb2.Listener(
            name=naming.outbound_listener(ip, port),
            address=_address(ip, port),
            listener_filters=[_tls_inspector()],
            filter_chains=_inbound_chains(wp, proxy, push, match_port=False),
            traffic_direction=base_pb2.INBOUND,
            continue_on_listener_filters_timeout=True,
            listener_filters_timeout=Duration(nanos=int(push.mesh.protocol_detection_timeout_s * 1e9)),
        ))
    return out


def _virtual_inbound(proxy: Proxy, push: PushContext) -> listener_pb2.Listener:
    chains: list[listener_components_pb2.FilterChain] = []
    for wp in proxy.ports:
        chains.extend(_inbound_chains(wp, proxy, push, match_port=True))
    # The catch-all is a filter chain with no destination port, not the listener's default
    # chain: a port with its own chains (e.g. STRICT: TLS only) then never falls through
    # to passthrough — a plaintext connection to it matches nothing and is closed.
    passthrough = listener_components_pb2.FilterChain(
        name="virtualInbound-catchall",
        filters=[_tcp_proxy(naming.INBOUND_PASSTHROUGH_CLUSTER, naming.INBOUND_PASSTHROUGH_CLUSTER, proxy, push)],
    )
    return listener_pb2.Listener(
        name=naming.VIRTUAL_INBOUND,
        address=_address("0.0.0.0", proxy.inbound_port),
        listener_filters=[_original_dst(), _tls_inspector()],
        filter_chains=[*chains, passthrough],
        # Not use_original_dst: inbound must stay on this listener (its chains match the
        # original destination port); handing off would reach outbound 0.0.0.0_PORT.
        traffic_direction=base_pb2.INBOUND,
        continue_on_listener_filters_timeout=True,
        listener_filters_timeout=Duration(nanos=int(push.mesh.protocol_detection_timeout_s * 1e9)),
    )


# ---- outbound ----------------------------------------------------------------------

def _fallback_cluster(push: PushContext, proxy: Proxy) -> str:
    mode = outbound_traffic_policy(proxy, push)
    return naming.BLACKHOLE_CLUSTER if mode == "REGISTRY_ONLY" else naming.PASSTHROUGH_CLUSTER


def _http_proxy_listener(proxy: Proxy, push: PushContext) -> listener_pb2.Listener:
    hcm = http_connection_manager("outbound_http_proxy", push.mesh, rds_name=naming.HTTP_PROXY_ROUTE)
    return listener_pb2.Listener(
        name=naming.HTTP_PROXY_LISTENER,
        address=_address("127.0.0.1", proxy.outbound_port),
        filter_chains=[listener_components_pb2.FilterChain(name="http_proxy", filters=[hcm_filter(hcm)])],
        traffic_direction=base_pb2.OUTBOUND,
    )


def _outbound_port_listeners(proxy: Proxy, push: PushContext) -> list[listener_pb2.Listener]:
    """iptables mode: one 0.0.0.0_PORT listener per HTTP port, VIP_PORT per TCP service."""
    http_ports: set[int] = set()
    tcp: dict[tuple[str, int], str] = {}
    for svc in egress_services(proxy, push):
        for sp in svc.ports:
            if sp.protocol.is_http:
                http_ports.add(sp.port)
            elif svc.resolution is not Resolution.NONE:
                for vip in svc.addresses or ("0.0.0.0",):
                    tcp.setdefault((vip, sp.port), naming.outbound_cluster(svc.hostname, sp.port))
    out = []
    for port in sorted(http_ports):
        hcm = http_connection_manager(f"outbound_0.0.0.0_{port}", push.mesh, rds_name=naming.outbound_route(port))
        out.append(listener_pb2.Listener(
            name=naming.outbound_listener("0.0.0.0", port),
            address=_address("0.0.0.0", port),
            filter_chains=[listener_components_pb2.FilterChain(filters=[hcm_filter(hcm)])],
            bind_to_port=wrappers_pb2.BoolValue(value=False),
            traffic_direction=base_pb2.OUTBOUND,
        ))
    for (vip, port), cluster in sorted(tcp.items()):
        if vip == "0.0.0.0" and port in http_ports:
            continue
        out.append(listener_pb2.Listener(
            name=naming.outbound_listener(vip, port),
            address=_address(vip, port),
            filter_chains=[listener_components_pb2.FilterChain(filters=[_tcp_proxy(cluster, cluster, proxy, push)])],
            bind_to_port=wrappers_pb2.BoolValue(value=False),
            traffic_direction=base_pb2.OUTBOUND,
        ))
    return out


def _virtual_outbound(proxy: Proxy, push: PushContext) -> listener_pb2.Listener:
    fallback = _fallback_cluster(push, proxy)
    return listener_pb2.Listener(
        name=naming.VIRTUAL_OUTBOUND,
        address=_address("0.0.0.0", proxy.outbound_port),
        filter_chains=[],
        default_filter_chain=listener_components_pb2.FilterChain(
            name=fallback, filters=[_tcp_proxy(fallback, fallback, proxy, push)]
        ),
        use_original_dst=wrappers_pb2.BoolValue(value=True),
        traffic_direction=base_pb2.OUTBOUND,
    )


def build_listeners(proxy: Proxy, push: PushContext) -> list[listener_pb2.Listener]:
    if proxy.is_gateway:
        from isthmus.pilot.translate.gateway import build_gateway_listeners

        return build_gateway_listeners(proxy, push)
    if proxy.capture_mode is CaptureMode.IPTABLES:
        return [_virtual_outbound(proxy, push), _virtual_inbound(proxy, push), *_outbound_port_listeners(proxy, push)]
    return [_http_proxy_listener(proxy, push), *_explicit_inbound(proxy, push)]
