"""What a proxy may see: Istio's Sidecar egress hosts applied over exportTo.

`egress_services(proxy, push)` is the set every outbound generator (clusters,
routes, listeners) starts from, so config size follows the Sidecar resource, not
the size of the mesh. Without a Sidecar, a proxy sees every exported service.
`outbound_traffic_policy` is the Sidecar's mode for unknown destinations, else the mesh's.
"""
from __future__ import annotations

from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import Config, PushContext
from isthmus.pilot.model.service import Service
from isthmus.shared.config.hosts import host_matches


def _parse_egress_host(entry: str, proxy_ns: str) -> tuple[str, str]:
    """`ns/host` with `.`/`~`/`*` namespaces → (namespace or "*" or "~", host pattern)."""
    ns, _, host = entry.partition("/")
    if ns == ".":
        ns = proxy_ns
    return ns, host


def _allowed(entries: tuple[str, ...], proxy_ns: str, svc_ns: str, hostname: str) -> bool:
    for entry in entries:
        ns, host = _parse_egress_host(entry, proxy_ns)
        if ns == "~":
            continue
        if ns not in ("*", svc_ns):
            continue
        if host == "*" or host_matches(host, hostname):
            return True
    return False


def egress_hosts(proxy: Proxy, push: PushContext) -> tuple[str, ...] | None:
    """The Sidecar's egress host entries for this proxy, or None when no Sidecar applies."""
    scope: Config | None = push.sidecar_scope(proxy)
    if scope is None or not scope.spec.egress:
        return None
    hosts: list[str] = []
    for listener in scope.spec.egress:
        hosts.extend(listener.hosts)
    return tuple(hosts)


def egress_services(proxy: Proxy, push: PushContext) -> tuple[Service, ...]:
    """Services the proxy's outbound config covers, sorted by hostname."""
    services = push.services(proxy)
    if proxy.is_gateway:
        return services
    hosts = egress_hosts(proxy, push)
    if hosts is None:
        return services
    return tuple(s for s in services if _allowed(hosts, proxy.namespace, s.namespace, s.hostname))


def egress_virtual_services(proxy: Proxy, push: PushContext) -> tuple[Config, ...]:
    """Mesh VirtualServices the proxy may use: exported to it and allowed by its Sidecar."""
    vss = push.virtual_services(proxy.namespace)
    hosts = egress_hosts(proxy, push)
    if hosts is None:
        return vss
    out = []
    for vs in vss:
        if any(_allowed(hosts, proxy.namespace, vs.namespace, push.resolve(h, vs.namespace)) for h in vs.spec.hosts):
            out.append(vs)
    return tuple(out)


def outbound_traffic_policy(proxy: Proxy, push: PushContext) -> str:
    """ALLOW_ANY or REGISTRY_ONLY: the proxy's Sidecar `outboundTrafficPolicy.mode`, else the mesh's."""
    scope = push.sidecar_scope(proxy) if not proxy.is_gateway else None
    policy = scope.spec.outbound_traffic_policy if scope is not None else None
    return (policy.mode if policy is not None and policy.mode else None) or push.mesh.outbound_traffic_policy
