"""RDS for gateways: `http.<port>` and `https.<port>.<portName>.<gateway>.<namespace>`, as Istio.

For each server behind the route name, every VirtualService bound to its Gateway (oldest
first) whose hosts intersect the server hosts its namespace may use (`ns/host`, `./host`,
`*/host`; wildcards on either side, the more specific name kept) contributes its routes
(route_action.translate_route, with `match.gateways` and `port` read against this
Gateway server) to one virtual host per intersecting host: VirtualServices for the same
host are merged, catch-all routes moved last. Domains are the host alone with
`ignore_port_in_host_matching` (Istio). `httpsRedirect` sets `require_tls: ALL` (a 301 to
https). No virtual host at all: a `*` virtual host with no routes (404 NR).

A TLS-terminating route also answers 421 Misdirected Request for the hosts whose SNI
selects another filter chain on the same listener (RFC 7540 §9.1.2): an HTTP/2 client
that reuses a connection across hosts under a shared (wildcard) certificate is told to
open a new one rather than being routed by the wrong server's routes or getting 404 NR.
Envoy does not do this itself (envoyproxy/envoy#6767), so the configuration does.
"""
from __future__ import annotations

from typing import Iterable

from google.protobuf import wrappers_pb2

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from isthmus.pilot.model.gateway import GatewayServer, MergedGateway, intersect_hosts, merge_gateways
from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import Config, PushContext
from isthmus.pilot.translate.route_action import RouteContext
from isthmus.pilot.translate.route_match import is_catch_all
from isthmus.pilot.translate.route_policy import mesh_retry
from isthmus.pilot.translate.routes import MAX_DIRECT_RESPONSE_BODY, virtual_service_routes

MISDIRECTED = "misdirected_request"


def _sorted_routes(routes: list[rc.Route]) -> list[rc.Route]:
    """Istio's SortVHostRoutes: catch-all routes last, the rest in order."""
    return [r for r in routes if not is_catch_all(r)] + [r for r in routes if is_catch_all(r)]


class _RouteBuilder:
    def __init__(self, proxy: Proxy, push: PushContext, merged: MergedGateway) -> None:
        self.proxy, self.push, self.merged = proxy, push, merged
        self.retry = mesh_retry(push.mesh.default_retry)
        self._memo: dict[tuple[str, int, bool, object], list[rc.Route]] = {}

    def routes(self, s: GatewayServer, vs: Config) -> list[rc.Route]:
        key = (s.gateway, s.port, s.server.tls is not None, vs.key)
        if key not in self._memo:
            ctx = RouteContext(self.proxy, self.push, s.port, self.retry, gateway=s.gateway, tls=s.is_tls)
            self._memo[key] = virtual_service_routes(ctx, vs)
        return self._memo[key]

    def virtual_hosts(self, servers: Iterable[GatewayServer]) -> dict[str, rc.VirtualHost]:
        vhosts: dict[str, rc.VirtualHost] = {}
        for s in servers:
            for vs in self.push.virtual_services(self.proxy.namespace, s.gateway):
                vs_hosts = tuple(self.push.resolve(h, vs.namespace).lower() for h in vs.spec.hosts)
                hosts = intersect_hosts(s.hosts_for(vs.namespace), vs_hosts)
                if not hosts:
                    continue
                routes = self.routes(s, vs)
                if not routes:  # Istio: "no routes matched", the VirtualService adds no virtual host
                    continue
                for h in hosts:
                    vh = vhosts.get(h)
                    if vh is None:
                        vh = vhosts[h] = rc.VirtualHost(name=f"{h}:{s.port}", domains=[h], include_request_attempt_count=True)
                    vh.routes.extend(routes)
                    if s.https_redirect:
                        vh.require_tls = rc.VirtualHost.ALL
            if s.https_redirect:  # hosts with no VirtualService still redirect
                for h in s.sni_hosts:
                    if h not in vhosts:
                        vhosts[h] = rc.VirtualHost(name=f"{h}:{s.port}", domains=[h], include_request_attempt_count=True,
                                                   require_tls=rc.VirtualHost.ALL)
        for vh in vhosts.values():
            routes = _sorted_routes(list(vh.routes))
            del vh.routes[:]
            vh.routes.extend(routes)
        return vhosts

    def misdirected(self, s: GatewayServer, claimed: set[str]) -> rc.VirtualHost | None:
        """421 for hosts another chain on this listener serves (their SNI would not pick this one)."""
        port = self.merged.port_of(s)
        if port is None or not s.is_tls:
            return None
        own = set(s.sni_hosts)
        others = sorted({h for o in port.servers if o is not s and o.is_tls for h in o.sni_hosts} - own - claimed - {"*"})
        if not others:
            return None
        route = rc.Route(name=MISDIRECTED, match=rc.RouteMatch(prefix="/"),
                         direct_response=rc.DirectResponseAction(status=421))
        return rc.VirtualHost(name=f"{MISDIRECTED}:{s.port}", domains=others, routes=[route])

    def route_configuration(self, name: str) -> route_pb2.RouteConfiguration:
        servers = self.merged.servers_by_route.get(name, ())
        out = route_pb2.RouteConfiguration(name=name, validate_clusters=wrappers_pb2.BoolValue(value=False))
        if not servers:
            return out  # e.g. a Gateway just deleted while Envoy still drains its listener
        vhosts = self.virtual_hosts(servers)
        listed = [vhosts[h] for h in sorted(vhosts, key=lambda h: vhosts[h].name)]
        if not listed:
            listed = [rc.VirtualHost(name=f"blackhole:{servers[0].port}", domains=["*"])]  # 404 NR
        elif len(servers) == 1:
            extra = self.misdirected(servers[0], {d for vh in listed for d in vh.domains})
            if extra is not None:
                listed.append(extra)
        out.virtual_hosts.extend(listed)
        out.ignore_port_in_host_matching = True
        out.max_direct_response_body_size_bytes.value = MAX_DIRECT_RESPONSE_BODY
        return out


def build_gateway_routes(proxy: Proxy, push: PushContext, names: Iterable[str]) -> list[route_pb2.RouteConfiguration]:
    """One RouteConfiguration per requested name, in request order (empty for unknown names)."""
    builder = _RouteBuilder(proxy, push, merge_gateways(proxy, push))
    return [builder.route_configuration(n) for n in names]
