"""A virtual request through the compiled Snapshot: where would the proxy send it?

`simulate(snapshot, listener_port_or_name, VirtualRequest(...))` follows the runtime's
steps — listener (original-destination hand-off included), what the listener filters
would detect (TLS/SNI/ALPN), filter chain, then HCM route selection (or tcp_proxy),
the action, the cluster and its endpoints — and returns an `Outcome`. It is the
architecture's simulation, over the configuration the proxy actually runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from isthmus.proxy.config.clusters import ClusterConfig
from isthmus.proxy.config.endpoints import EndpointConfig
from isthmus.proxy.config.listeners import FilterChainConfig, ListenerConfig
from isthmus.proxy.config.route_action import DirectResponseConfig, RedirectConfig, RouteActionConfig
from isthmus.proxy.config.routes import RouteConfig, VirtualHostConfig, strip_port
from isthmus.proxy.config.snapshot import Snapshot

# Outcome.error values (Envoy's response flags where one applies).
NO_LISTENER = "no listener"
NO_FILTER_CHAIN = "no matching filter chain"
ROUTES_MISSING = "route configuration not received"
NO_ROUTE = "NR"
NO_CLUSTER = "NC"


@dataclass(frozen=True)
class VirtualRequest:
    authority: str = ""
    path: str = "/"  # may carry ?query
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    sni: str = ""
    tls: bool = False
    dest_port: int | None = None  # original destination (iptables capture)
    alpn: tuple[str, ...] = ()
    dest_ip: str | None = None
    source_ip: str = "127.0.0.1"
    source_port: int = 0
    scheme: str = "http"
    random_value: int = 0  # picks weighted clusters and runtime fractions


@dataclass(frozen=True)
class Outcome:
    listener: ListenerConfig | None = None
    filter_chain: FilterChainConfig | None = None
    virtual_host: VirtualHostConfig | None = None
    route: RouteConfig | None = None
    cluster: str = ""  # where this request goes (weighted: the pick for random_value)
    clusters: tuple[tuple[str, int], ...] = ()  # every destination with its weight
    cluster_config: ClusterConfig | None = None
    endpoints: tuple[EndpointConfig, ...] = ()
    direct_response: DirectResponseConfig | None = None
    redirect: RedirectConfig | None = None
    error: str = ""

    @property
    def route_name(self) -> str:
        return self.route.name if self.route else ""


def _find_listener(snapshot: Snapshot, target: int | str, req: VirtualRequest) -> ListenerConfig | None:
    if isinstance(target, str):
        return snapshot.listeners.get(target)
    listener = snapshot.listener_on_port(target) or snapshot.listener_on_port(target, bound_only=False)
    if listener is not None and listener.use_original_dst and req.dest_port is not None:
        # Envoy hands a redirected connection to the listener of its original destination.
        handoff = snapshot.listener_on_port(req.dest_port, req.dest_ip or "0.0.0.0", bound_only=False)
        return handoff if handoff is not None and handoff is not listener else listener
    return listener


def _detected(listener: ListenerConfig, req: VirtualRequest) -> tuple[str, str, tuple[str, ...]]:
    """(transport protocol, SNI, ALPN) as the listener filters would report them."""
    if req.tls and listener.has_filter("tls_inspector"):
        return "tls", req.sni, tuple(req.alpn)
    alpn = tuple(req.alpn) if not req.tls and listener.has_filter("http_inspector") else ()
    return "raw_buffer", "", alpn


def _destination(snapshot: Snapshot, out: dict, name: str) -> None:
    out["cluster"] = name
    cluster = snapshot.clusters.get(name)
    if cluster is None:
        out["error"] = NO_CLUSTER
        return
    out["cluster_config"] = cluster
    eps = snapshot.endpoints_for(cluster)
    out["endpoints"] = eps.endpoints if eps is not None else ()


def simulate(snapshot: Snapshot, listener: int | str, request: VirtualRequest) -> Outcome:
    lis = _find_listener(snapshot, listener, request)
    if lis is None:
        return Outcome(error=NO_LISTENER)
    transport, sni, alpn = _detected(lis, request)
    dest_port = request.dest_port if request.dest_port is not None else lis.address.port
    dest_ip = request.dest_ip or (lis.address.host if lis.address.host not in ("", "0.0.0.0", "::") else None)
    chain = lis.select_chain(dest_port, sni, transport, alpn, request.source_ip, dest_ip=dest_ip, source_port=request.source_port)
    if chain is None:
        return Outcome(listener=lis, error=NO_FILTER_CHAIN)
    out: dict = {"listener": lis, "filter_chain": chain}
    if chain.tcp is not None:
        tcp = chain.tcp
        out["clusters"] = ((tcp.cluster, 1),) if tcp.cluster else tcp.weighted_clusters
        _destination(snapshot, out, tcp.pick(request.random_value))
        return Outcome(**out)
    hcm = chain.http
    assert hcm is not None
    table = hcm.route_table if hcm.route_table is not None else snapshot.routes.get(hcm.rds_name)
    if table is None:
        return Outcome(**out, error=ROUTES_MISSING)
    authority = request.authority
    if hcm.strip_port_mode == "any" or (hcm.strip_port_mode == "matching" and authority.endswith(f":{dest_port}")):
        authority = strip_port(authority)
    path, _, query = request.path.partition("?")
    headers = {k.lower(): v for k, v in request.headers.items()}
    hit = table.match(authority, path, headers.get, request.method, query, scheme=request.scheme,
                      random_value=request.random_value)
    if hit is None:
        return Outcome(**out, error=NO_ROUTE)
    out["virtual_host"], out["route"] = hit
    action = hit[1].action
    if isinstance(action, RedirectConfig):
        return Outcome(**out, redirect=action)
    if isinstance(action, DirectResponseConfig):
        return Outcome(**out, direct_response=action)
    assert isinstance(action, RouteActionConfig)
    if action.weighted_clusters is not None:
        out["clusters"] = tuple((c.name, c.weight) for c in action.weighted_clusters.clusters)
        name = action.weighted_clusters.pick(request.random_value).name
    elif action.cluster_header:
        name = headers.get(action.cluster_header, "")
        out["clusters"] = ((name, 1),) if name else ()
    else:
        name = action.cluster
        out["clusters"] = ((name, 1),)
    _destination(snapshot, out, name)
    return Outcome(**out)
