"""The Gateways a router proxy serves, merged into ports and servers (Istio's MergeGateways).

`merge_gateways(proxy, push)` is pure: the Gateways whose `selector` matches the proxy,
oldest first, become one `GatewayPort` per listening address (the proxy's port map
applied to each server port), holding the servers that may share it: HTTP servers of
one protocol (one RDS `http.<port>`), or TLS servers told apart by SNI (an HTTPS server
that terminates TLS gets RDS `https.<port>.<portName>.<gateway>.<namespace>`), or a
single TCP server. A server that conflicts (another protocol on the port, a TLS host
already served on the port) is dropped and named in `rejected`, as Istio does.
Server hosts keep their namespace scope: `./h` → the Gateway's namespace, `*/h` → `h`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import Config, PushContext
from isthmus.pilot.model.service import Protocol
from isthmus.shared.config.hosts import host_matches
from isthmus.shared.config.types import Server

PASSTHROUGH_MODES = ("PASSTHROUGH", "AUTO_PASSTHROUGH")


@dataclass(frozen=True)
class ServerHost:
    """One server host: `namespace` is "" for any namespace (`h`, `*/h`)."""

    namespace: str
    host: str

    def allows(self, vs_namespace: str) -> bool:
        return not self.namespace or self.namespace == vs_namespace


def sanitize_hosts(hosts: tuple[str, ...], gateway_namespace: str) -> tuple[ServerHost, ...]:
    """Istio's sanitizeServerHostNamespace: `./h` → own namespace, `*/h` → any, `*/*` → `*`."""
    out = []
    for h in hosts:
        ns, sep, name = h.partition("/")
        if not sep:
            ns, name = "", h
        elif ns == ".":
            ns = gateway_namespace
        elif ns == "*":
            ns = ""
        out.append(ServerHost(ns, name.lower()))
    return tuple(out)


@dataclass(frozen=True)
class GatewayServer:
    server: Server
    gateway: str  # "ns/name" of the Gateway that declared it
    port: int  # the Gateway's server port (VirtualService port matches, vhost names)
    listen_port: int  # where the proxy listens for it (port map applied)
    bind: str
    protocol: Protocol
    hosts: tuple[ServerHost, ...]
    route_name: str = ""  # RDS name for HTTP and TLS-terminating HTTPS servers

    @property
    def name(self) -> str:
        """The server's port name (part of an HTTPS route name)."""
        return (self.server.port.name or "") if self.server.port else ""

    @property
    def tls_mode(self) -> str:
        """"" without TLS settings; an unset mode is PASSTHROUGH (the proto default)."""
        tls = self.server.tls
        if tls is None or (self.protocol.is_http and not self.protocol.is_tls):
            return ""
        return tls.mode or "PASSTHROUGH"

    @property
    def https_redirect(self) -> bool:
        return bool(self.server.tls is not None and self.server.tls.https_redirect)

    @property
    def is_tls(self) -> bool:
        """TLS or HTTPS with TLS settings (told apart by SNI on a shared port)."""
        return self.server.tls is not None and not self.protocol.is_http

    @property
    def is_passthrough(self) -> bool:
        return self.tls_mode in PASSTHROUGH_MODES

    @property
    def terminates_http(self) -> bool:
        """Plain HTTP, or HTTPS that terminates TLS: served by an HTTP connection manager."""
        return self.protocol.is_http or (self.protocol is Protocol.HTTPS and self.is_tls and not self.is_passthrough)

    @property
    def sni_hosts(self) -> tuple[str, ...]:
        """Istio's GetSNIHostsForServer: the host part of every host, sorted, once."""
        return tuple(sorted({h.host for h in self.hosts}))

    def hosts_for(self, vs_namespace: str) -> tuple[str, ...]:
        """The server hosts a VirtualService in `vs_namespace` may bind to (host.NamesForNamespace)."""
        return tuple(dict.fromkeys(h.host for h in self.hosts if h.allows(vs_namespace)))


@dataclass(frozen=True)
class GatewayPort:
    bind: str
    port: int  # the listening port
    servers: tuple[GatewayServer, ...]

    @property
    def listener_name(self) -> str:
        return f"{self.bind}_{self.port}"

    @property
    def is_http(self) -> bool:
        return bool(self.servers) and self.servers[0].protocol.is_http

    @property
    def is_tls(self) -> bool:
        return bool(self.servers) and self.servers[0].is_tls


@dataclass(frozen=True)
class MergedGateway:
    ports: tuple[GatewayPort, ...] = ()
    servers_by_route: Mapping[str, tuple[GatewayServer, ...]] = field(default_factory=lambda: MappingProxyType({}))
    rejected: tuple[str, ...] = ()

    def port_of(self, server: GatewayServer) -> GatewayPort | None:
        return next((p for p in self.ports if server in p.servers), None)


def route_name(s: GatewayServer) -> str:
    """Istio's gatewayRDSRouteName (with the listening port)."""
    if s.protocol.is_http:
        return f"http.{s.listen_port}"
    if s.protocol is Protocol.HTTPS and s.is_tls and not s.is_passthrough:
        gw_ns, _, gw_name = s.gateway.partition("/")
        return f"https.{s.listen_port}.{s.name}.{gw_name}.{gw_ns}"
    return ""


def _server(proxy: Proxy, gw: Config, server: Server) -> GatewayServer | None:
    if server.port is None or not server.port.number:
        return None
    protocol = Protocol.parse(server.port.protocol, server.port.name or "")
    s = GatewayServer(
        server=server,
        gateway=f"{gw.namespace}/{gw.name}",
        port=server.port.number,
        listen_port=proxy.listen_port(server.port.number),
        bind=server.bind or proxy.gateway_bind,
        protocol=protocol,
        hosts=sanitize_hosts(server.hosts, gw.namespace),
    )
    return replace(s, route_name=route_name(s))


def merge_gateways(proxy: Proxy, push: PushContext) -> MergedGateway:
    ports: dict[tuple[str, int], list[GatewayServer]] = {}
    tls_hosts: dict[tuple[str, int], set[str]] = {}
    by_route: dict[str, list[GatewayServer]] = {}
    rejected: list[str] = []
    for gw in push.gateways_for(proxy):
        for i, server in enumerate(gw.spec.servers):
            s = _server(proxy, gw, server)
            where = f"Gateway {gw.namespace}/{gw.name} servers[{i}]"
            if s is None:
                continue
            key = (s.bind, s.listen_port)
            existing = ports.get(key)
            if existing:
                first = existing[0]
                if s.is_tls != first.is_tls or (not s.is_tls and (s.protocol != first.protocol or not s.protocol.is_http)):
                    rejected.append(f"{where}: port {s.port} ({s.protocol.value}) conflicts with "
                                    f"{first.gateway} port {first.port} ({first.protocol.value}) on {s.bind}:{s.listen_port}")
                    continue
            if s.is_tls:
                known = tls_hosts.setdefault(key, set())
                dup = sorted(set(s.sni_hosts) & known)
                if dup:
                    rejected.append(f"{where}: host(s) {', '.join(dup)} already served with TLS on port {s.port}")
                    continue
                known.update(s.sni_hosts)
            if s.route_name:
                if s.route_name in by_route and not s.protocol.is_http:
                    rejected.append(f"{where}: duplicate HTTPS route {s.route_name} (port names must be unique)")
                    continue
                by_route.setdefault(s.route_name, []).append(s)
            ports.setdefault(key, []).append(s)
    return MergedGateway(
        ports=tuple(GatewayPort(b, p, tuple(ss)) for (b, p), ss in sorted(ports.items(), key=lambda kv: (kv[0][1], kv[0][0]))),
        servers_by_route=MappingProxyType({k: tuple(v) for k, v in by_route.items()}),
        rejected=tuple(rejected),
    )


def intersect_hosts(server_hosts: tuple[str, ...], vs_hosts: tuple[str, ...]) -> tuple[str, ...]:
    """Istio's host.Names Intersection: for each pair where one covers the other, the more
    specific one (`*.foo.com` ∩ `a.foo.com` = `a.foo.com`), once, in VirtualService order."""
    out: dict[str, None] = {}
    for v in vs_hosts:
        for s in server_hosts:
            if host_matches(s, v):
                out[v] = None
            elif host_matches(v, s):
                out[s] = None
    return tuple(out)
