"""RDS for sidecars: `build_routes(proxy, push, names)` → one RouteConfiguration per name.

- `"9080"` (iptables capture, one outbound listener per port): a virtual host per
  visible HTTP service on that port, then the catch-all (`allow_any` → PassthroughCluster
  under ALLOW_ANY, `block_all` → 502 under REGISTRY_ONLY), as Istio.
- `"http_proxy"` (explicit capture): a virtual host per visible HTTP service *port*;
  domains carry `:PORT` (the bare forms only for port 80, as Istio merges them); then the
  same catch-all, where `allow_any` names the original destination from the authority
  (`x-envoy-original-dst-host`: there is no original destination on the socket), as do
  the virtual hosts of `resolution: NONE` services.
- any name for a gateway (router) proxy: translate/gateway_routes.py.
- anything else: an empty RouteConfiguration with that name.

A virtual host is `HOST:PORT` with the FQDN, the names a client in the proxy's
namespace may use (`name`, `name.ns`, `name.ns.svc`) and the VIPs. Its routes come
from the oldest mesh VirtualService for the host (see route_action), else one default
route to `outbound|PORT||HOST` with the mesh retry policy. Same inputs → same bytes.
"""
from __future__ import annotations

from typing import Iterable

from google.protobuf import wrappers_pb2

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from isthmus.pilot.model.proxy import CaptureMode, Proxy
from isthmus.pilot.model.push_context import Config, PushContext
from isthmus.pilot.model.service import Protocol, Resolution, Service, ServicePort
from isthmus.pilot.model.sidecar_scope import egress_services, egress_virtual_services, outbound_traffic_policy
from isthmus.pilot.translate.naming import HTTP_PROXY_ROUTE, PASSTHROUGH_CLUSTER, ClusterName
from isthmus.pilot.translate.route_action import RouteContext, cluster_hash_policy, set_timeout, translate_route
from isthmus.pilot.translate.route_match import is_catch_all
from isthmus.pilot.translate.route_policy import mesh_retry, retry_policy

ALLOW_ANY = "allow_any"
BLOCK_ALL = "block_all"
DEFAULT_ROUTE = "default"
MAX_DIRECT_RESPONSE_BODY = 1024 * 1024  # Istio's; Envoy's own default is 4 KiB


def is_http_port(port: ServicePort) -> bool:
    """HTTP, HTTP2, gRPC, or undeclared (sniffed) — Istio's IsHTTPOrSniffed."""
    return port.protocol.is_http or port.protocol is Protocol.UNSUPPORTED


# ---------------------------------------------------------------- domains

def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def alt_names(hostname: str, proxy_namespace: str, domain_suffix: str) -> list[str]:
    """Istio's alt virtual hosts for a Kubernetes-style name seen from `proxy_namespace`:
    same namespace → `name`, `name.ns.svc`, `name.ns`; other → `name.ns`, `name.ns.svc`."""
    marker = f".svc.{domain_suffix}"
    if not hostname.endswith(marker):
        return []
    stem = hostname[: -len(marker)]  # name.ns
    name, dot, namespace = stem.partition(".")
    if not dot or not name or not namespace:
        return []
    if namespace == proxy_namespace:
        return [name, f"{stem}.svc", stem]
    return [stem, f"{stem}.svc"]


def domains_for(svc: Service, port: int, proxy_namespace: str, domain_suffix: str, bare: bool) -> list[str]:
    """FQDN, alt names, then VIPs; each `name` (when `bare`) and `name:PORT`."""
    names = [svc.hostname, *alt_names(svc.hostname, proxy_namespace, domain_suffix)]
    names += [_bracket(a) for a in svc.addresses if a and a not in ("0.0.0.0", "::")]
    out: list[str] = []
    for n in names:
        if bare:
            out.append(n)
        out.append(f"{n}:{port}")
    return out


# ---------------------------------------------------------------- routes

def default_route(ctx: RouteContext, svc: Service, port: int) -> rc.Route:
    """Istio's BuildDefaultHTTPOutboundRoute (+ the DestinationRule's hash key, if any)."""
    key = ClusterName("outbound", port, "", svc.hostname)
    action = rc.RouteAction(cluster=str(key))
    set_timeout(action, None)
    policy = retry_policy(ctx.default_retry)  # Istio keeps previous_hosts here even with hashing
    if policy is not None:
        action.retry_policy.CopyFrom(policy)
    action.hash_policy.extend(cluster_hash_policy(ctx, key))
    return rc.Route(
        name=DEFAULT_ROUTE,
        match=rc.RouteMatch(prefix="/"),
        route=action,
        decorator=rc.Decorator(operation=f"{svc.hostname}:{port}/*"),
    )


def virtual_service_routes(ctx: RouteContext, vs: Config) -> list[rc.Route]:
    """Istio's BuildHTTPRoutesForVirtualService: ordered, one route per applicable match,
    stopping after the first catch-all."""
    out: list[rc.Route] = []
    for http in vs.spec.http:
        catch_all = False
        if not http.match:
            route = translate_route(ctx, vs, http, None)
            if route is not None:
                out.append(route)
            catch_all = True
        else:
            for match in http.match:
                route = translate_route(ctx, vs, http, match)
                if route is not None:
                    out.append(route)
                    if is_catch_all(route):
                        catch_all = True
                        break
        if catch_all:
            break
    return out


class _Builder:
    """Per-call state: the proxy's view (services, VirtualServices) and a route memo."""

    def __init__(self, proxy: Proxy, push: PushContext) -> None:
        self.proxy = proxy
        self.push = push
        self.services = egress_services(proxy, push)
        self.allowed_vs = {vs.key for vs in egress_virtual_services(proxy, push)}
        self.default_retry = mesh_retry(push.mesh.default_retry)
        self.outbound_policy = outbound_traffic_policy(proxy, push)
        self._routes: dict[tuple[str, int], list[rc.Route]] = {}

    def routes_for(self, svc: Service, port: int) -> list[rc.Route]:
        key = (svc.hostname, port)
        if key not in self._routes:
            ctx = RouteContext(self.proxy, self.push, port, self.default_retry)
            vs = self.push.mesh_virtual_service_for_host(self.proxy.namespace, svc.hostname)
            routes = virtual_service_routes(ctx, vs) if vs is not None and vs.key in self.allowed_vs else []
            self._routes[key] = routes or [default_route(ctx, svc, port)]
        return self._routes[key]

    def virtual_hosts(self, pairs: Iterable[tuple[Service, int]], bare_for) -> list[rc.VirtualHost]:
        seen: set[str] = set()
        out = []
        for svc, port in sorted(pairs, key=lambda p: (p[0].hostname, p[1])):
            domains = []
            for d in domains_for(svc, port, self.proxy.namespace, self.push.mesh.domain_suffix, bare_for(port)):
                if d.lower() not in seen:  # Envoy rejects a domain claimed by two virtual hosts
                    seen.add(d.lower())
                    domains.append(d)
            if domains:
                vh = rc.VirtualHost(
                    name=f"{svc.hostname}:{port}",
                    domains=domains,
                    routes=self.routes_for(svc, port),
                    include_request_attempt_count=True,
                )
                if svc.resolution is Resolution.NONE and self.proxy.capture_mode is CaptureMode.EXPLICIT:
                    vh.request_headers_to_add.append(original_dst_from_authority())
                out.append(vh)
        return out

    def port_route(self, port: int) -> list[rc.VirtualHost]:
        pairs = [(s, port) for s in self.services if (p := s.port(port)) is not None and is_http_port(p)]
        return [*self.virtual_hosts(pairs, lambda _p: True), catch_all_virtual_host(self.push, mode=self.outbound_policy)]

    def http_proxy_route(self) -> list[rc.VirtualHost]:
        pairs = [(s, p.port) for s in self.services for p in s.ports if is_http_port(p)]
        return [*self.virtual_hosts(pairs, lambda p: p == 80),
                catch_all_virtual_host(self.push, explicit=True, mode=self.outbound_policy)]


ORIGINAL_DST_HOST_HEADER = "x-envoy-original-dst-host"


def original_dst_from_authority() -> base_pb2.HeaderValueOption:
    """Explicit capture has no original destination on the socket: ORIGINAL_DST clusters (Passthrough,
    `resolution: NONE`) read it from this header, set to the authority the app asked for."""
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=ORIGINAL_DST_HOST_HEADER, value="%REQ(:AUTHORITY)%"),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def catch_all_virtual_host(push: PushContext, explicit: bool = False, mode: str | None = None) -> rc.VirtualHost:
    """REGISTRY_ONLY: `block_all`, 502. ALLOW_ANY: `allow_any` to PassthroughCluster; for the explicit
    (HTTP_PROXY) listener the original destination is the request's authority (it must be IP:PORT:
    Envoy's ORIGINAL_DST cluster does not resolve names). `mode`: the Sidecar's, else the mesh's."""
    if (mode or push.mesh.outbound_traffic_policy) == "REGISTRY_ONLY":
        route = rc.Route(name=BLOCK_ALL, match=rc.RouteMatch(prefix="/"), direct_response=rc.DirectResponseAction(status=502))
        return rc.VirtualHost(name=BLOCK_ALL, domains=["*"], routes=[route], include_request_attempt_count=True)
    action = rc.RouteAction(cluster=PASSTHROUGH_CLUSTER)
    set_timeout(action, None)
    route = rc.Route(name=ALLOW_ANY, match=rc.RouteMatch(prefix="/"), route=action)
    if explicit:
        route.request_headers_to_add.append(original_dst_from_authority())
    return rc.VirtualHost(name=ALLOW_ANY, domains=["*"], routes=[route], include_request_attempt_count=True)


def build_routes(proxy: Proxy, push: PushContext, names: Iterable[str]) -> list[route_pb2.RouteConfiguration]:
    """One RouteConfiguration per requested name, in request order (gateways: gateway_routes)."""
    if proxy.is_gateway:
        from isthmus.pilot.translate.gateway_routes import build_gateway_routes

        return build_gateway_routes(proxy, push, names)
    builder = _Builder(proxy, push)
    out = []
    for name in names:
        if name == HTTP_PROXY_ROUTE:
            vhosts = builder.http_proxy_route()
        elif name.isdigit():
            vhosts = builder.port_route(int(name))
        else:
            vhosts = None
        if vhosts is None:
            out.append(route_pb2.RouteConfiguration(name=name, validate_clusters=wrappers_pb2.BoolValue(value=False)))
            continue
        out.append(route_pb2.RouteConfiguration(
            name=name,
            virtual_hosts=vhosts,
            validate_clusters=wrappers_pb2.BoolValue(value=False),
            max_direct_response_body_size_bytes=wrappers_pb2.UInt32Value(value=MAX_DIRECT_RESPONSE_BODY),
        ))
    return out
