"""Service registries: the `Registry` protocol and the ServiceEntry/WorkloadEntry one.

`build_service_entry_registry(configs, mesh)` is pure: config in, services and
endpoints out. Auto-registered workloads are WorkloadEntry objects (written to galley
by the auto-registration controller), so they arrive here like any other config.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol as TypingProtocol, Sequence

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.service import Endpoint, Protocol, Resolution, Service, ServicePort
from isthmus.shared.config.resource import Resource
from isthmus.shared.config.types import ServiceEntrySpec, WorkloadEntrySpec

TLS_MODE_LABEL = "security.istio.io/tlsMode"


class Registry(TypingProtocol):
    """What a registry offers pilot (the Kubernetes registry will implement the same)."""

    def services(self) -> Sequence[Service]: ...

    def endpoints(self, hostname: str) -> Sequence[Endpoint]: ...


@dataclass(frozen=True)
class RegistrySnapshot:
    service_list: tuple[Service, ...]
    by_host: Mapping[str, tuple[Endpoint, ...]] = field(default_factory=dict)

    def services(self) -> Sequence[Service]:
        return self.service_list

    def endpoints(self, hostname: str) -> Sequence[Endpoint]:
        return self.by_host.get(hostname, ())


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def _ports(spec: ServiceEntrySpec) -> tuple[ServicePort, ...]:
    return tuple(
        ServicePort(port=p.number, name=p.name or "", protocol=Protocol.parse(p.protocol, p.name or ""), target_port=p.target_port or 0)
        for p in spec.ports
        if p.number
    )


def _endpoint(hostname: str, sp: ServicePort, we: WorkloadEntrySpec, namespace: str, name: str, mesh: MeshConfig) -> Endpoint | None:
    if not we.address:
        return None
    port = sp.target_port or sp.port
    if we.ports and sp.name in we.ports:
        port = we.ports[sp.name]
    labels = dict(we.labels)
    sa = we.service_account or ""
    return Endpoint(
        hostname=hostname,
        service_port=sp.port,
        address=we.address,
        port=port,
        labels=labels,
        namespace=namespace,
        service_account=spiffe_id(mesh.trust_domain, namespace, sa) if sa else "",
        workload_name=name,
        tls_mode=labels.get(TLS_MODE_LABEL, "disabled"),
        network=we.network or "",
        locality=we.locality or "",
        weight=we.weight or 1,
    )


def build_service_entry_registry(
    service_entries: Iterable[Resource], workload_entries: Iterable[Resource], mesh: MeshConfig
) -> RegistrySnapshot:
    """ServiceEntries (oldest first) → services; inline endpoints and selected
    WorkloadEntries → endpoints. The first ServiceEntry for a host wins, as in Istio."""
    wes = [(r, WorkloadEntrySpec.from_dict(r.spec)) for r in workload_entries]
    services: dict[str, Service] = {}
    endpoints: dict[str, list[Endpoint]] = {}
    for r in sorted(service_entries, key=lambda x: (x.meta.creation_timestamp, x.meta.namespace, x.meta.name)):
        spec = ServiceEntrySpec.from_dict(r.spec)
        ports = _ports(spec)
        resolution = Resolution(spec.resolution or "NONE")
        for host in spec.hosts:
            if host in services:
                continue
            services[host] = Service(
                hostname=host,
                namespace=r.meta.namespace,
                ports=ports,
                addresses=tuple(spec.addresses),
                resolution=resolution,
                mesh_external=(spec.location or "MESH_EXTERNAL") == "MESH_EXTERNAL",
                export_to=frozenset(spec.export_to or ("*",)),
                selector=dict(spec.workload_selector.labels) if spec.workload_selector else {},
                source=f"ServiceEntry {r.meta.namespace}/{r.meta.name}",
                creation=r.meta.creation_timestamp,
            )
            eps = endpoints.setdefault(host, [])
            for sp in ports:
                for i, we in enumerate(spec.endpoints):
                    ep = _endpoint(host, sp, we, r.meta.namespace, f"{r.meta.name}-{i}", mesh)
                    if ep:
                        eps.append(ep)
                if spec.workload_selector is not None:
                    sel = dict(spec.workload_selector.labels)
                    for wr, we in wes:
                        if wr.meta.namespace == r.meta.namespace and all(we.labels.get(k) == v for k, v in sel.items()):
                            ep = _endpoint(host, sp, we, wr.meta.namespace, wr.meta.name, mesh)
                            if ep:
                                eps.append(ep)
            if resolution is Resolution.DNS and not spec.endpoints and spec.workload_selector is None and "*" not in host:
                # DNS resolution with no endpoints: the proxy resolves the host itself.
                for sp in ports:
                    eps.append(Endpoint(hostname=host, service_port=sp.port, address=host, port=sp.target_port or sp.port,
                                        namespace=r.meta.namespace))
    return RegistrySnapshot(
        service_list=tuple(services.values()),
        by_host={h: tuple(sorted(e, key=lambda x: (x.service_port, x.address, x.port))) for h, e in endpoints.items()},
    )
