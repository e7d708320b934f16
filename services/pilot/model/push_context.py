"""PushContext: the one immutable snapshot every generator reads during a push.

Built from a config snapshot (galley's objects at one revision), the registry and
the mesh config; indexes are computed once here so generators never scan config.
Lookups follow Istio's precedence rules (oldest VirtualService wins per host on the
mesh gateway; DestinationRule: proxy namespace, then service namespace, then root).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.registry import RegistrySnapshot, build_service_entry_registry
from isthmus.pilot.model.service import Endpoint, Service
from isthmus.shared.config.hosts import host_matches, resolve_short_name
from isthmus.shared.config.kinds import by_kind
from isthmus.shared.config.resource import Resource, ResourceKey

MESH_GATEWAY = "mesh"


def resolve_gateway_name(name: str, namespace: str) -> str:
    """A VirtualService's `gateways:` entry → `ns/name` (or `mesh`), as Istio's ResolveGatewayName:
    `ns/name`, `./name`, a short `name` (the VirtualService's namespace), or the legacy FQDN
    `name.ns.svc.cluster.local`."""
    if name == MESH_GATEWAY:
        return name
    if "/" in name:
        ns, _, short = name.partition("/")
        return f"{namespace if ns == '.' else ns}/{short}"
    if "." in name:
        short, _, rest = name.partition(".")
        return f"{rest.split('.', 1)[0]}/{short}"
    return f"{namespace}/{name}"


@dataclass(frozen=True)
class Config:
    """A stored resource with its typed spec (converted once per snapshot)."""

    resource: Resource
    spec: Any

    @property
    def name(self) -> str:
        return self.resource.meta.name

    @property
    def namespace(self) -> str:
        return self.resource.meta.namespace

    @property
    def key(self) -> ResourceKey:
        return self.resource.key

    def __hash__(self) -> int:
        return hash(self.resource.key)


def _age(c: Config) -> tuple:
    return (c.resource.meta.creation_timestamp, c.namespace, c.name)


@dataclass(frozen=True)
class ConfigSnapshot:
    """Every stored object at one galley revision, typed, oldest first per kind."""

    revision: int
    by_kind: Mapping[str, tuple[Config, ...]]

    @classmethod
    def build(cls, revision: int, resources: Iterable[Resource]) -> "ConfigSnapshot":
        grouped: dict[str, list[Config]] = {}
        for r in resources:
            row = by_kind(r.kind)
            if row is None:
                continue
            grouped.setdefault(r.kind, []).append(Config(r, row.spec_class.from_dict(r.spec)))
        return cls(revision, MappingProxyType({k: tuple(sorted(v, key=_age)) for k, v in grouped.items()}))

    def of(self, kind: str) -> tuple[Config, ...]:
        return self.by_kind.get(kind, ())

    def resources(self) -> list[Resource]:
        return [c.resource for cs in self.by_kind.values() for c in cs]


def _labels_match(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def _exported_to(export_to: Sequence[str], own_ns: str, proxy_ns: str) -> bool:
    if not export_to:
        return True
    return "*" in export_to or proxy_ns in export_to or ("." in export_to and own_ns == proxy_ns)


@dataclass(frozen=True)
class PushContext:
    version: str
    mesh: MeshConfig
    configs: ConfigSnapshot
    registry: RegistrySnapshot
    services_by_host: Mapping[str, Service] = field(default_factory=dict)
    # gateway ("mesh" or "ns/name") → VirtualServices bound to it, oldest first
    vs_by_gateway: Mapping[str, tuple[Config, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, version: str, configs: ConfigSnapshot, mesh: MeshConfig, extra: RegistrySnapshot | None = None) -> "PushContext":
        registry = build_service_entry_registry(
            [c.resource for c in configs.of("ServiceEntry")], [c.resource for c in configs.of("WorkloadEntry")], mesh
        )
        if extra is not None:
            merged = {s.hostname: s for s in extra.service_list}
            merged.update({s.hostname: s for s in registry.service_list})
            by_host = {**extra.by_host, **registry.by_host}
            registry = RegistrySnapshot(tuple(merged.values()), by_host)
        vs_index: dict[str, list[Config]] = {}
        for vs in configs.of("VirtualService"):
            gateways = vs.spec.gateways or (MESH_GATEWAY,)
            for key in dict.fromkeys(resolve_gateway_name(gw, vs.namespace) for gw in gateways):
                vs_index.setdefault(key, []).append(vs)
        return cls(
            version=version,
            mesh=mesh,
            configs=configs,
            registry=registry,
            services_by_host=MappingProxyType({s.hostname: s for s in registry.service_list}),
            vs_by_gateway=MappingProxyType({k: tuple(v) for k, v in vs_index.items()}),
        )

    # ---- services -------------------------------------------------------------
    def services(self, proxy: Proxy | None = None) -> tuple[Service, ...]:
        """Services visible to the proxy (exportTo), sorted by hostname."""
        svcs = self.registry.service_list
        if proxy is not None:
            svcs = tuple(s for s in svcs if s.visible_to(proxy.namespace))
        return tuple(sorted(svcs, key=lambda s: s.hostname))

    def service(self, hostname: str) -> Service | None:
        return self.services_by_host.get(hostname)

    def endpoints(self, hostname: str, port: int | None = None, subset_labels: Mapping[str, str] | None = None) -> tuple[Endpoint, ...]:
        eps = self.registry.endpoints(hostname)
        return tuple(
            e for e in eps
            if (port is None or e.service_port == port) and _labels_match(subset_labels, e.labels)
        )

    def resolve(self, host: str, namespace: str) -> str:
        return resolve_short_name(host, namespace, self.mesh.domain_suffix)

    # ---- VirtualServices ------------------------------------------------------
    def virtual_services(self, proxy_namespace: str, gateway: str = MESH_GATEWAY) -> tuple[Config, ...]:
        """VirtualServices bound to `gateway` and exported to the proxy's namespace, oldest first."""
        return tuple(
            vs for vs in self.vs_by_gateway.get(gateway, ())
            if _exported_to(vs.spec.export_to, vs.namespace, proxy_namespace)
        )

    def mesh_virtual_service_for_host(self, proxy_namespace: str, hostname: str) -> Config | None:
        """The oldest mesh VirtualService whose hosts cover `hostname` (exact before wildcard)."""
        exact = wildcard = None
        for vs in self.virtual_services(proxy_namespace):
            for h in vs.spec.hosts:
                fq = self.resolve(h, vs.namespace)
                if fq == hostname and exact is None:
                    exact = vs
                elif fq != hostname and host_matches(fq, hostname) and wildcard is None:
                    wildcard = vs
        return exact or wildcard

    # ---- DestinationRules -----------------------------------------------------
    def destination_rule(self, proxy_namespace: str, hostname: str) -> Config | None:
        """Istio's lookup: the most specific host; among equals, the proxy's namespace,
        then the service's namespace, then the root namespace; oldest first."""
        svc = self.services_by_host.get(hostname)
        svc_ns = svc.namespace if svc else ""
        best: tuple | None = None
        chosen = None
        for dr in self.configs.of("DestinationRule"):
            if not _exported_to(dr.spec.export_to, dr.namespace, proxy_namespace):
                continue
            if dr.spec.workload_selector is not None:
                continue  # workload-scoped rules apply to the selected proxies only (not modelled per host)
            host = self.resolve(dr.spec.host or "", dr.namespace)
            if not host_matches(host, hostname):
                continue
            specificity = 0 if host == hostname else len(host)  # exact first, then the longest wildcard
            ns_rank = 0 if dr.namespace == proxy_namespace else 1 if dr.namespace == svc_ns else 2 if dr.namespace == self.mesh.root_namespace else 3
            rank = (0 if specificity == 0 else 1, -specificity, ns_rank, _age(dr))
            if best is None or rank < best:
                best, chosen = rank, dr
        return chosen

    # ---- Sidecar, PeerAuthentication, Gateways ------------------------------------
    def sidecar_scope(self, proxy: Proxy) -> Config | None:
        """The Sidecar for this workload: selector match in its namespace, else the
        namespace default, else the root namespace default."""
        in_ns = [s for s in self.configs.of("Sidecar") if s.namespace == proxy.namespace]
        for s in in_ns:
            if s.spec.workload_selector is not None and _labels_match(s.spec.workload_selector.labels, proxy.labels):
                return s
        for s in in_ns:
            if s.spec.workload_selector is None:
                return s
        for s in self.configs.of("Sidecar"):
            if s.namespace == self.mesh.root_namespace and s.spec.workload_selector is None:
                return s
        return None

    def peer_authentications(self, namespace: str, labels: Mapping[str, str]) -> tuple[Config | None, Config | None, Config | None]:
        """(mesh-wide, namespace-wide, workload) PeerAuthentication; oldest wins at each level."""
        mesh = ns = workload = None
        for pa in self.configs.of("PeerAuthentication"):
            selector = pa.spec.selector.match_labels if pa.spec.selector is not None else None
            if pa.namespace == self.mesh.root_namespace and not selector:
                mesh = mesh or pa
            elif pa.namespace == namespace and not selector:
                ns = ns or pa
            elif pa.namespace == namespace and selector and _labels_match(selector, labels):
                workload = workload or pa
        return mesh, ns, workload

    def gateways_for(self, proxy: Proxy) -> tuple[Config, ...]:
        """Gateway resources whose selector matches this gateway proxy's labels."""
        return tuple(
            g for g in self.configs.of("Gateway")
            if g.spec.selector and _labels_match(g.spec.selector, proxy.labels)
        )
