"""Which proxies a PushRequest concerns, and what to push them. Pure and conservative.

`proxy_needs_push` answers "could this change alter this proxy's config?": a change
to a namespaced policy (Sidecar, AuthorizationPolicy, ...) in namespace X concerns
only X's proxies (all of them when X is the root namespace), a Gateway only gateway
proxies, a Secret only gateways in its namespace; anything else — or an unknown kind, or a request naming no config —
concerns everyone. `push_plan` then orders the types (CDS → EDS → LDS → RDS) and,
for EDS-only pushes, narrows EDS to the clusters of the services that changed.
"""
from __future__ import annotations

from typing import Iterable

from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.push.request import PushRequest
from isthmus.pilot.translate.naming import ClusterName
from isthmus.pilot.xds.typeurls import ENDPOINT, PUSH_ORDER
from isthmus.shared.config.resource import ResourceKey

# Kinds whose effect stays inside their namespace (root namespace: mesh-wide).
NAMESPACE_SCOPED = frozenset({"Sidecar", "AuthorizationPolicy", "RequestAuthentication", "EnvoyFilter",
                              "Telemetry", "WasmPlugin"})
# Kinds only gateway (router) proxies read.
GATEWAY_ONLY = frozenset({"Gateway"})
# Kinds only gateways in the same namespace read (credentialName Secrets, as Istio).
GATEWAY_NAMESPACE_ONLY = frozenset({"Secret"})


def config_affects(proxy: Proxy, key: ResourceKey, root_namespace: str) -> bool:
    if key.kind in GATEWAY_ONLY:
        return proxy.is_gateway
    if key.kind in GATEWAY_NAMESPACE_ONLY:
        return proxy.is_gateway and key.namespace == proxy.namespace
    if key.kind in NAMESPACE_SCOPED:
        return key.namespace in (proxy.namespace, root_namespace)
    return True


def proxy_needs_push(proxy: Proxy, req: PushRequest, root_namespace: str) -> bool:
    if not req.full:
        return True  # EDS-only: narrowed per cluster by `eds_names`
    if not req.configs_updated:
        return True  # global / resync / unknown scope
    return any(config_affects(proxy, key, root_namespace) for key in req.configs_updated)


def eds_names(subscribed: Iterable[str], hosts: frozenset[str]) -> frozenset[str]:
    """Subscribed EDS cluster names that target one of `hosts`; unparseable names are kept."""
    out = set()
    for name in subscribed:
        parsed = ClusterName.parse(name)
        if parsed is None or parsed.host in hosts:
            out.add(name)
    return frozenset(out)


def push_plan(proxy: Proxy, req: PushRequest, root_namespace: str,
              eds_subscribed: Iterable[str] = ()) -> list[tuple[str, frozenset[str] | None]]:
    """(type URL, only these names or None for all) in push order; [] when nothing concerns the proxy."""
    if not proxy_needs_push(proxy, req, root_namespace):
        return []
    if req.full:
        return [(t, None) for t in PUSH_ORDER]
    if not req.eds_hosts:
        return [(ENDPOINT, None)]
    names = eds_names(eds_subscribed, req.eds_hosts)
    return [(ENDPOINT, names)] if names else []
