"""LDS for gateways (router proxies): one listener per listening address, Istio's gateway.go.

`build_gateway_listeners(proxy, push)` turns the merged Gateways (model/gateway.py) into
listeners named `BIND_PORT` (`0.0.0.0_8080`), PORT being the server port after the
proxy's port map (node metadata GATEWAY_PORT_MAP, e.g. `80=8080`, as a Kubernetes
Service's targetPort does for Istio). Per port:
- HTTP servers: one filter chain, an HTTP connection manager on RDS `http.<port>`.
- TLS-terminating HTTPS servers: a filter chain per server matching its hosts as SNI
  (`server_names`, none for `*`), the server's TLS context, RDS
  `https.<port>.<portName>.<gateway>.<namespace>`.
- PASSTHROUGH: a chain per VirtualService `tls` match (its sniHosts) with tcp_proxy to
  the route's destination; AUTO_PASSTHROUGH: a chain per mesh service port (and subset)
  matching SNI `outbound_.PORT_.SUBSET_.HOST` to the SNI-DNAT cluster of that name.
- TCP servers, and TLS servers terminating TLS: tcp_proxy from VirtualService `tcp` routes.
TLS ports get the tls_inspector. A listener with no filter chain is not emitted.
"""
from __future__ import annotations

from typing import Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from isthmus.pilot.model.gateway import GatewayPort, GatewayServer, merge_gateways
from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import Config, PushContext, resolve_gateway_name
from isthmus.pilot.translate.gateway_tls import server_tls_context
from isthmus.pilot.translate.hcm import access_logs, hcm_filter, http_connection_manager, pack
from isthmus.pilot.translate.route_action import RouteContext, destination_key
from isthmus.pilot.translate.tls import istio_mutual_sni, transport_socket
from isthmus.shared.config.hosts import hosts_overlap
from isthmus.shared.config.types import Destination, L4MatchAttributes, RouteDestination, TLSMatchAttributes

TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
# Istio's allIstioMtlsALPNs: what a sidecar's mesh mTLS offers (AUTO_PASSTHROUGH matches on it).
ALL_ISTIO_MTLS_ALPNS = ("istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2")


# ---------------------------------------------------------------- network filters

def gateway_hcm(stat_prefix: str, route_name: str, push: PushContext) -> hcm_pb2.HttpConnectionManager:
    """The shared HTTP connection manager, as Istio configures it on gateways: the client address
    is the peer's (use_remote_address), XFCC sanitised then set from the client certificate."""
    hcm = http_connection_manager(stat_prefix, push.mesh, rds_name=route_name)
    hcm.use_remote_address.value = True
    hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
    details = hcm.set_current_client_cert_details
    details.subject.value = True
    details.cert = details.dns = details.uri = True
    return hcm


def tcp_proxy_filter(ctx: RouteContext, routes: Sequence[RouteDestination], namespace: str) -> lc.Filter | None:
    """tcp_proxy to one destination, or weighted clusters (0-weight destinations dropped)."""
    weighted = [r for r in routes if r.weight] or list(routes)
    if not weighted:
        return None
    keys = [str(destination_key(ctx, r.destination or Destination(), namespace)) for r in weighted]
    tp = tcp_proxy_pb2.TcpProxy(access_log=access_logs(ctx.push.mesh))
    if len(keys) == 1:
        tp.cluster = tp.stat_prefix = keys[0]
    else:
        tp.stat_prefix = keys[0]
        for key, r in zip(keys, weighted):
            tp.weighted_clusters.clusters.add(name=key, weight=r.weight or 1)
    return lc.Filter(name=TCP_PROXY, typed_config=pack(tp))


def _single_tcp_proxy(cluster: str, push: PushContext) -> lc.Filter:
    tp = tcp_proxy_pb2.TcpProxy(stat_prefix=cluster, cluster=cluster, access_log=access_logs(push.mesh))
    return lc.Filter(name=TCP_PROXY, typed_config=pack(tp))


# ---------------------------------------------------------------- VirtualService selection

def _l4_match(match: L4MatchAttributes | TLSMatchAttributes, s: GatewayServer, vs: Config) -> bool:
    """Istio's l4SingleMatch: the match port is the server's (or unset) and its gateways name this one."""
    if match.port and match.port != s.port:
        return False
    return not match.gateways or s.gateway in {resolve_gateway_name(g, vs.namespace) for g in match.gateways}


def bound_virtual_services(proxy: Proxy, push: PushContext, s: GatewayServer) -> list[Config]:
    """VirtualServices bound to the server's Gateway whose hosts overlap the hosts it lets their
    namespace use (Istio's pickMatchingGatewayHosts), oldest first."""
    out = []
    for vs in push.virtual_services(proxy.namespace, s.gateway):
        allowed = s.hosts_for(vs.namespace)
        if any(hosts_overlap(h, push.resolve(v, vs.namespace)) for h in allowed for v in vs.spec.hosts):
            out.append(vs)
    return out


def tcp_route_filter(proxy: Proxy, push: PushContext, s: GatewayServer) -> lc.Filter | None:
    """The first VirtualService `tcp` route matching this server (Istio's buildGatewayNetworkFiltersFromTCPRoutes)."""
    ctx = RouteContext(proxy, push, s.port, None, gateway=s.gateway)
    for vs in bound_virtual_services(proxy, push, s):
        for tcp in vs.spec.tcp:
            if tcp.route and (not tcp.match or any(_l4_match(m, s, vs) for m in tcp.match)):
                return tcp_proxy_filter(ctx, tcp.route, vs.namespace)
    return None


# ---------------------------------------------------------------- filter chains

def _match(server_names: Sequence[str] = (), alpn: Sequence[str] = ()) -> lc.FilterChainMatch:
    m = lc.FilterChainMatch()
    names = [n for n in server_names if n]
    if "*" not in names:  # `*` means any SNI: no server_names at all (Istio)
        m.server_names.extend(names)
    m.application_protocols.extend(alpn)
    return m


def _chain(name: str, match: lc.FilterChainMatch, filters: list[lc.Filter], tls=None) -> lc.FilterChain:
    chain = lc.FilterChain(name=name, filter_chain_match=match, filters=filters)
    if tls is not None:
        chain.transport_socket.CopyFrom(transport_socket(tls))
    return chain


def _https_chain(s: GatewayServer, push: PushContext) -> lc.FilterChain:
    hcm = gateway_hcm(f"outbound_{s.bind}_{s.listen_port}", s.route_name, push)
    return _chain(s.route_name, _match(s.sni_hosts), [hcm_filter(hcm)], server_tls_context(s.server.tls))


def _passthrough_chains(proxy: Proxy, push: PushContext, s: GatewayServer, used: set[str]) -> list[lc.FilterChain]:
    """A chain per VirtualService `tls` match; SNI hosts already routed on this port are skipped."""
    ctx = RouteContext(proxy, push, s.port, None, gateway=s.gateway)
    out = []
    for vs in bound_virtual_services(proxy, push, s):
        for tls in vs.spec.tls:
            if not tls.route:
                continue
            for match in tls.match:
                if not _l4_match(match, s, vs):
                    continue
                sni = [h.lower() for h in match.sni_hosts]
                if not sni or used & set(sni):
                    continue
                used.update(sni)
                f = tcp_proxy_filter(ctx, tls.route, vs.namespace)
                if f is not None:
                    out.append(_chain(f"passthrough|{','.join(sni)}", _match(sni), [f]))
    return out


def auto_passthrough_targets(proxy: Proxy, push: PushContext, s: GatewayServer) -> list[tuple[str, str, int, str]]:
    """(SNI, host, port, subset) for every mesh-internal service port the server's hosts cover."""
    out = []
    for svc in push.services(proxy):
        if svc.mesh_external or not any(hosts_overlap(h, svc.hostname) for h in s.sni_hosts):
            continue
        dr = push.destination_rule(proxy.namespace, svc.hostname)
        subsets = [""] + [ss.name for ss in (dr.spec.subsets if dr else ()) if ss.name]
        for port in sorted(svc.ports, key=lambda p: p.port):
            for subset in subsets:
                out.append((istio_mutual_sni(svc.hostname, port.port, subset), svc.hostname, port.port, subset))
    return out


def _auto_passthrough_chains(proxy: Proxy, push: PushContext, s: GatewayServer, used: set[str]) -> list[lc.FilterChain]:
    out = []
    for sni, _, _, _ in auto_passthrough_targets(proxy, push, s):
        if sni in used:
            continue
        used.add(sni)
        out.append(_chain(sni, _match([sni], ALL_ISTIO_MTLS_ALPNS), [_single_tcp_proxy(sni, push)]))
    return out


def _tls_port_chains(proxy: Proxy, push: PushContext, gp: GatewayPort) -> list[lc.FilterChain]:
    chains: list[lc.FilterChain] = []
    used: set[str] = set()  # SNI names routed by passthrough chains on this port
    for s in gp.servers:
        if s.terminates_http:
            chains.append(_https_chain(s, push))
        elif s.tls_mode == "AUTO_PASSTHROUGH":
            chains.extend(_auto_passthrough_chains(proxy, push, s, used))
        elif s.is_passthrough:
            chains.extend(_passthrough_chains(proxy, push, s, used))
        else:  # TLS terminated, then TCP
            f = tcp_route_filter(proxy, push, s)
            if f is not None:
                tls = server_tls_context(s.server.tls, tcp_termination=True)
                chains.append(_chain(f"tls|{','.join(s.sni_hosts)}", _match(s.sni_hosts), [f], tls))
    return _unique(chains)


def _unique(chains: list[lc.FilterChain]) -> list[lc.FilterChain]:
    """Envoy rejects two chains with the same match: the first one wins."""
    seen: set[bytes] = set()
    out = []
    for c in chains:
        key = c.filter_chain_match.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _port_chains(proxy: Proxy, push: PushContext, gp: GatewayPort) -> list[lc.FilterChain]:
    first = gp.servers[0]
    if gp.is_http:
        hcm = gateway_hcm(f"outbound_{gp.bind}_{gp.port}", first.route_name, push)
        return [_chain(first.route_name, lc.FilterChainMatch(), [hcm_filter(hcm)])]
    if gp.is_tls:
        return _tls_port_chains(proxy, push, gp)
    f = tcp_route_filter(proxy, push, first)
    return [_chain(f"tcp|{gp.port}", lc.FilterChainMatch(), [f])] if f is not None else []


def build_gateway_listeners(proxy: Proxy, push: PushContext) -> list[listener_pb2.Listener]:
    out = []
    for gp in merge_gateways(proxy, push).ports:
        chains = _port_chains(proxy, push, gp)
        if not chains:
            continue
        listener = listener_pb2.Listener(
            name=gp.listener_name,
            address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address=gp.bind, port_value=gp.port)),
            filter_chains=chains,
            traffic_direction=base_pb2.OUTBOUND,
        )
        if gp.is_tls:
            listener.listener_filters.add(name=TLS_INSPECTOR, typed_config=pack(tls_inspector_pb2.TlsInspector()))
        out.append(listener)
    return out


# ---------------------------------------------------------------- CDS additions

def build_sni_dnat_clusters(proxy: Proxy, push: PushContext) -> list[cluster_pb2.Cluster]:
    """AUTO_PASSTHROUGH's clusters `outbound_.PORT_.SUBSET_.HOST`: the outbound cluster without
    TLS (the client's mesh mTLS passes through), endpoints from the same EDS service name."""
    from isthmus.pilot.translate.clusters import build_outbound_cluster

    merged = merge_gateways(proxy, push)
    out: dict[str, cluster_pb2.Cluster] = {}
    for gp in merged.ports:
        for s in gp.servers:
            if s.tls_mode != "AUTO_PASSTHROUGH":
                continue
            for sni, host, port, subset in auto_passthrough_targets(proxy, push, s):
                if sni in out:
                    continue
                svc = push.service(host)
                dr = push.destination_rule(proxy.namespace, host)
                labels = next((dict(ss.labels) for ss in (dr.spec.subsets if dr else ()) if ss.name == subset), {})
                sp = svc.port(port) if svc else None
                base = build_outbound_cluster(proxy, push, svc, sp, subset, labels, dr) if sp else None
                if base is None:
                    continue
                base.name = sni
                base.ClearField("transport_socket")
                base.ClearField("transport_socket_matches")
                if base.HasField("load_assignment"):
                    base.load_assignment.cluster_name = sni
                out[sni] = base
    return list(out.values())
