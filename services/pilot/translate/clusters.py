"""CDS: (Proxy, PushContext) → Envoy Clusters, as Istio's cluster builder emits them.

`build_clusters(proxy, push)` returns, in this order: outbound clusters for every
service the proxy may see (Sidecar scope + exportTo; per port, then one per
DestinationRule subset), inbound clusters for a sidecar's workload ports, then
PassthroughCluster, BlackHoleCluster (and InboundPassthroughClusterIpv4 for iptables
sidecars); gateways get AUTO_PASSTHROUGH's SNI-DNAT clusters instead of inbound ones. Discovery type follows the service's resolution; the DestinationRule's
merged traffic policy (policy.py) sets limits, LB, outlier detection and TLS;
auto-mTLS uses transport_socket_matches on the endpoints' `tlsMode` metadata.
"""
from __future__ import annotations

from typing import Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, struct_pb2

from isthmus.pilot.model.peer_authn import MtlsMode, effective_mode
from isthmus.pilot.model.proxy import CaptureMode, Proxy
from isthmus.pilot.model.push_context import Config, PushContext
from isthmus.pilot.model.service import Endpoint, Protocol, Resolution, Service, ServicePort
from isthmus.pilot.model.sidecar_scope import egress_services
from isthmus.pilot.translate import naming
from isthmus.pilot.translate.endpoints import ISTIO_TLS_MODE, TLS_MODE_KEY, load_assignment
from isthmus.pilot.translate.policy import (
    apply_connection_pool, apply_load_balancer, apply_outlier_detection, default_circuit_breakers,
    effective_traffic_policy, seconds, use_downstream_protocol, use_http2,
)
from isthmus.pilot.translate.tls import (
    ALPN_H2_ONLY, ALPN_IN_MESH, ALPN_IN_MESH_H2, RAW_BUFFER_TRANSPORT_SOCKET, istio_mutual_sni,
    transport_socket, upstream_from_client_settings, upstream_istio_mutual,
)
from isthmus.shared.config.types import TrafficPolicy

Cluster = cluster_pb2.Cluster
HTTP_PROTOCOL_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HttpProtocolOptions = http_protocol_options_pb2.HttpProtocolOptions
# Istio's source address for inbound traffic to the app under iptables capture (not redirected again).
INBOUND_PASSTHROUGH_BIND_IPV4 = "127.0.0.6"
LOCALHOST = "127.0.0.1"


def ads_config_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.ApiVersion.V3
    )


def raw_buffer_socket() -> base_pb2.TransportSocket:
    packed = any_pb2.Any()
    packed.Pack(raw_buffer_pb2.RawBuffer())
    return base_pb2.TransportSocket(name=RAW_BUFFER_TRANSPORT_SOCKET, typed_config=packed)


def _finish(c: Cluster, opts: HttpProtocolOptions) -> Cluster:
    """Pack HTTP protocol options when any were set; Envoy requires an upstream protocol,
    so HTTP/1.1 is made explicit when only common options were set (as Istio)."""
    if opts.ByteSize() == 0:
        return c
    if opts.WhichOneof("upstream_protocol_options") is None:
        opts.explicit_http_config.http_protocol_options.SetInParent()
    c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS_KEY].Pack(opts)
    return c


def _set_upstream_protocol(opts: HttpProtocolOptions, protocol: Protocol, proxy: Proxy) -> None:
    if protocol in (Protocol.HTTP2, Protocol.GRPC):
        use_http2(opts)
    elif protocol is Protocol.UNSUPPORTED and not proxy.is_gateway:
        use_downstream_protocol(opts)  # sniffed port: speak what the client spoke


def _h2_upgrade(opts: HttpProtocolOptions, policy: TrafficPolicy | None, protocol: Protocol) -> None:
    http = policy.connection_pool.http if policy and policy.connection_pool else None
    if http is not None and http.h2_upgrade_policy == "UPGRADE" and protocol in (Protocol.HTTP, Protocol.UNSUPPORTED):
        opts.ClearField("upstream_protocol_options")
        use_http2(opts)


def _is_h2(opts: HttpProtocolOptions) -> bool:
    return opts.explicit_http_config.HasField("http2_protocol_options")


def _cluster_metadata(svc: Service, subset: str, dr: Config | None) -> base_pb2.Metadata:
    istio: dict = {"services": [{"host": svc.hostname, "name": svc.hostname.split(".")[0], "namespace": svc.namespace}]}
    if subset:
        istio["subset"] = subset
    if dr is not None:
        istio["config"] = f"/apis/networking.istio.io/v1/namespaces/{dr.namespace}/destination-rule/{dr.name}"
    s = struct_pb2.Struct()
    s.update(istio)
    md = base_pb2.Metadata()
    md.filter_metadata["istio"].CopyFrom(s)
    return md


def _auto_mtls_allowed(push: PushContext, svc: Service, port: ServicePort, c: Cluster) -> bool:
    if not push.mesh.enable_auto_mtls or svc.mesh_external or c.type == Cluster.ORIGINAL_DST:
        return False
    mode = effective_mode(push, svc.namespace, svc.selector, port.target_port or port.port)
    return mode is not MtlsMode.DISABLE


def _apply_tls(c: Cluster, opts: HttpProtocolOptions, policy: TrafficPolicy | None, push: PushContext,
               svc: Service, port: ServicePort, subset: str) -> None:
    """DR TLS when set (DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL); otherwise auto-mTLS:
    ISTIO_MUTUAL for endpoints labelled tlsMode=istio, plaintext for the rest."""
    tls = policy.tls if policy else None
    h2 = _is_h2(opts)
    sni = istio_mutual_sni(svc.hostname, port.port, subset)
    accounts = sorted({e.service_account for e in push.endpoints(svc.hostname, port.port) if e.service_account})
    if tls is None:
        if not _auto_mtls_allowed(push, svc, port, c):
            return
        ctx = upstream_istio_mutual(sni, accounts, ALPN_IN_MESH_H2 if h2 else ALPN_IN_MESH)
        match = struct_pb2.Struct()
        match.update({TLS_MODE_KEY: ISTIO_TLS_MODE})
        c.transport_socket_matches.add(name=f"tlsMode-{ISTIO_TLS_MODE}", match=match, transport_socket=transport_socket(ctx))
        c.transport_socket_matches.add(name="tlsMode-disabled", match=struct_pb2.Struct(), transport_socket=raw_buffer_socket())
        return
    mode = tls.mode or "DISABLE"
    if mode == "ISTIO_MUTUAL":
        sans = list(tls.subject_alt_names) or accounts
        ctx = upstream_istio_mutual(tls.sni or sni, sans, ALPN_IN_MESH_H2 if h2 else ALPN_IN_MESH)
        c.transport_socket.CopyFrom(transport_socket(ctx))
    elif mode in ("SIMPLE", "MUTUAL"):
        ctx = upstream_from_client_settings(tls, alpn=ALPN_H2_ONLY if h2 else ())
        if ctx is None:
            return
        c.transport_socket.CopyFrom(transport_socket(ctx))
        if not tls.sni:
            opts.upstream_http_protocol_options.auto_sni = True
            if not tls.subject_alt_names and not tls.insecure_skip_verify:
                opts.upstream_http_protocol_options.auto_san_validation = True


def _set_discovery(c: Cluster, svc: Service, endpoints: Sequence[Endpoint]) -> bool:
    """Discovery type from the resolution; False when a DNS cluster has nothing to resolve."""
    if svc.resolution is Resolution.STATIC:
        c.type = Cluster.EDS
        c.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
        c.eds_cluster_config.service_name = c.name
    elif svc.resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN):
        if not endpoints:
            return False
        logical = svc.resolution is Resolution.DNS_ROUND_ROBIN
        c.type = Cluster.LOGICAL_DNS if logical else Cluster.STRICT_DNS
        c.dns_lookup_family = Cluster.V4_ONLY  # (respect_dns_ttl is deprecated in Envoy 1.40)
        # LOGICAL_DNS takes exactly one host: the first endpoint, as Istio.
        c.load_assignment.CopyFrom(load_assignment(c.name, endpoints[:1] if logical else endpoints))
    else:
        c.type = Cluster.ORIGINAL_DST
        c.lb_policy = Cluster.CLUSTER_PROVIDED
    return True


def build_outbound_cluster(proxy: Proxy, push: PushContext, svc: Service, port: ServicePort,
                           subset: str = "", labels: dict[str, str] | None = None, dr: Config | None = None) -> Cluster | None:
    """`outbound|PORT|SUBSET|HOST` with the merged DR policy applied; None for a DNS
    cluster with no endpoints (Envoy has nothing to resolve)."""
    name = naming.outbound_cluster(svc.hostname, port.port, subset)
    c = Cluster(name=name)
    endpoints = push.endpoints(svc.hostname, port.port, labels or {})
    if not _set_discovery(c, svc, endpoints):
        return None
    if c.type == Cluster.ORIGINAL_DST and proxy.capture_mode is CaptureMode.EXPLICIT:
        c.original_dst_lb_config.use_http_header = True  # no original destination on the socket: the route names it
    policy = effective_traffic_policy(dr.spec if dr else None, port.port, subset)
    opts = HttpProtocolOptions()
    _set_upstream_protocol(opts, port.protocol, proxy)
    _h2_upgrade(opts, policy, port.protocol)
    c.common_lb_config.SetInParent()
    apply_connection_pool(c, opts, policy, push.mesh)
    apply_outlier_detection(c, policy)
    apply_load_balancer(c, policy)
    _apply_tls(c, opts, policy, push, svc, port, subset)
    c.metadata.CopyFrom(_cluster_metadata(svc, subset, dr))
    return _finish(c, opts)


def build_outbound_clusters(proxy: Proxy, push: PushContext) -> list[Cluster]:
    """Per visible service (by hostname) and port: the default cluster, then its subsets
    in DestinationRule order."""
    out: list[Cluster] = []
    for svc in egress_services(proxy, push):
        dr = push.destination_rule(proxy.namespace, svc.hostname)
        subsets = dr.spec.subsets if dr is not None else ()
        for port in sorted(svc.ports, key=lambda p: p.port):
            base = build_outbound_cluster(proxy, push, svc, port, dr=dr)
            if base is None:
                continue
            out.append(base)
            for s in subsets:
                if not s.name:
                    continue
                sc = build_outbound_cluster(proxy, push, svc, port, s.name, dict(s.labels), dr)
                if sc is not None:
                    out.append(sc)
    return out


def _bind_inbound_source(c: Cluster, proxy: Proxy) -> None:
    if proxy.capture_mode is CaptureMode.IPTABLES:
        c.upstream_bind_config.source_address.CopyFrom(
            address_pb2.SocketAddress(address=INBOUND_PASSTHROUGH_BIND_IPV4, port_value=0)
        )


def build_inbound_clusters(proxy: Proxy, push: PushContext) -> list[Cluster]:
    """`inbound|PORT||` per workload port: STATIC to the app on 127.0.0.1:PORT."""
    out = []
    seen: set[int] = set()
    for wp in sorted(proxy.ports, key=lambda p: p.port):
        if wp.port in seen:
            continue
        seen.add(wp.port)
        name = naming.inbound_cluster(wp.port)
        c = Cluster(name=name, type=Cluster.STATIC, lb_policy=Cluster.ROUND_ROBIN)
        c.connect_timeout.CopyFrom(seconds(push.mesh.connect_timeout_s))
        c.circuit_breakers.CopyFrom(default_circuit_breakers())
        c.load_assignment.CopyFrom(load_assignment(name, [Endpoint(hostname="", service_port=wp.port, address=LOCALHOST, port=wp.port)]))
        _bind_inbound_source(c, proxy)
        opts = HttpProtocolOptions()
        _set_upstream_protocol(opts, Protocol.parse(wp.protocol, wp.name), proxy)
        out.append(_finish(c, opts))
    return out


def passthrough_cluster(proxy: Proxy, push: PushContext) -> Cluster:
    """ORIGINAL_DST to wherever the app was going (ALLOW_ANY). Under explicit capture there is
    no original destination on the socket, so the x-envoy-original-dst-host header may name it."""
    c = Cluster(name=naming.PASSTHROUGH_CLUSTER, type=Cluster.ORIGINAL_DST, lb_policy=Cluster.CLUSTER_PROVIDED)
    c.connect_timeout.CopyFrom(seconds(push.mesh.connect_timeout_s))
    c.circuit_breakers.CopyFrom(default_circuit_breakers())
    if proxy.capture_mode is CaptureMode.EXPLICIT:
        c.original_dst_lb_config.use_http_header = True
    opts = HttpProtocolOptions()
    use_downstream_protocol(opts)
    return _finish(c, opts)


def inbound_passthrough_cluster(proxy: Proxy, push: PushContext) -> Cluster:
    """Inbound traffic to ports with no inbound cluster (iptables capture): to the original
    destination, from 127.0.0.6 so it is not captured again."""
    c = Cluster(name=naming.INBOUND_PASSTHROUGH_CLUSTER, type=Cluster.ORIGINAL_DST, lb_policy=Cluster.CLUSTER_PROVIDED)
    c.connect_timeout.CopyFrom(seconds(push.mesh.connect_timeout_s))
    c.circuit_breakers.CopyFrom(default_circuit_breakers())
    _bind_inbound_source(c, proxy)
    opts = HttpProtocolOptions()
    use_downstream_protocol(opts)
    return _finish(c, opts)


def blackhole_cluster(push: PushContext) -> Cluster:
    """A STATIC cluster with no endpoints: every request to it fails (REGISTRY_ONLY)."""
    c = Cluster(name=naming.BLACKHOLE_CLUSTER, type=Cluster.STATIC, lb_policy=Cluster.ROUND_ROBIN)
    c.connect_timeout.CopyFrom(seconds(push.mesh.connect_timeout_s))
    return c


def build_clusters(proxy: Proxy, push: PushContext) -> list[Cluster]:
    """Every cluster this proxy needs, in a deterministic order (see the module docstring)."""
    clusters = build_outbound_clusters(proxy, push)
    if proxy.is_gateway:
        from isthmus.pilot.translate.gateway import build_sni_dnat_clusters  # AUTO_PASSTHROUGH servers

        clusters.extend(build_sni_dnat_clusters(proxy, push))
    else:
        clusters.extend(build_inbound_clusters(proxy, push))
    clusters.append(passthrough_cluster(proxy, push))
    clusters.append(blackhole_cluster(push))
    if not proxy.is_gateway and proxy.capture_mode is CaptureMode.IPTABLES:
        clusters.append(inbound_passthrough_cluster(proxy, push))
    return clusters
