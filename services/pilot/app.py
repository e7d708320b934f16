"""Pilot wired together: galley watch → PushRequests → DiscoveryServer → ADS.

A thin shell: it owns the current config snapshot and mesh config, turns config
changes into PushRequests (EDS-only when only endpoints changed), and builds the
PushContext the discovery server asks for. Auto-registration hooks into proxy
connect/disconnect.
"""
from __future__ import annotations

from dataclasses import dataclass

from isthmus.galley.client import AsyncGalleyClient
from isthmus.pilot.autoregister import AutoRegistration
from isthmus.pilot.configsource import GalleyConfigSource
from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import ConfigSnapshot, PushContext
from isthmus.pilot.push.debounce import DebounceSettings
from isthmus.pilot.push.request import PushRequest, Reason
from isthmus.pilot.xds.discovery import DiscoveryServer
from isthmus.pilot.xds.metrics import XdsMetrics
from isthmus.shared.config.resource import Resource, ResourceKey
from isthmus.shared.logging import get_logger

log = get_logger("pilot")

ENDPOINT_KINDS = {"WorkloadEntry"}


@dataclass(frozen=True)
class PilotConfig:
    galley: str
    mesh: MeshConfig
    debounce: DebounceSettings
    workload_entry_grace: float = 10.0


def _selects(se: Resource, namespace: str, labels: dict) -> bool:
    selector = (se.spec.get("workloadSelector") or {}).get("labels")
    return bool(selector) and se.meta.namespace == namespace and all(labels.get(k) == v for k, v in selector.items())


def classify_change(
    objects: dict[ResourceKey, Resource], changed: frozenset[ResourceKey], previous_labels: dict[ResourceKey, dict]
) -> PushRequest:
    """Full push unless only WorkloadEntries changed: WorkloadEntries only add or remove
    endpoints of the ServiceEntries that select them, so that is an EDS-only push naming
    those hosts (pure; O(changed × ServiceEntries), no registry rebuild per event)."""
    if not changed or any(k.kind not in ENDPOINT_KINDS for k in changed):
        return PushRequest(full=True, configs_updated=changed, reasons=((Reason.CONFIG, max(1, len(changed))),))
    entries = [r for k, r in objects.items() if k.kind == "ServiceEntry"]
    hosts: set[str] = set()
    for key in changed:
        label_sets = [previous_labels.get(key)]
        if key in objects:
            label_sets.append(dict(objects[key].spec.get("labels") or {}))
        for labels in filter(None, label_sets):
            for se in entries:
                if _selects(se, key.namespace, labels):
                    hosts.update(se.spec.get("hosts") or ())
    return PushRequest(full=False, configs_updated=changed, reasons=((Reason.ENDPOINT, len(changed)),), eds_hosts=frozenset(hosts))


class Pilot:
    def __init__(self, config: PilotConfig, metrics: XdsMetrics):
        self.config = config
        self.revision = 0
        self.objects: dict[ResourceKey, Resource] = {}
        self._we_labels: dict[ResourceKey, dict] = {}  # WorkloadEntry labels as last seen
        self.galley_client = AsyncGalleyClient(config.galley)
        self.autoreg = AutoRegistration(self.galley_client, grace_period=config.workload_entry_grace)
        self.discovery = DiscoveryServer(
            self.build_push_context,
            debounce=config.debounce,
            metrics=metrics,
            trust_domain=config.mesh.trust_domain,
            on_proxy_connected=self._connected,
            on_proxy_disconnected=self._disconnected,
        )
        self.source = GalleyConfigSource(config.galley, self._on_config)

    def build_push_context(self, previous: PushContext | None, req: PushRequest, version: str) -> PushContext:
        snapshot = ConfigSnapshot.build(self.revision, self.objects.values())
        return PushContext.build(version, snapshot, self.config.mesh)

    async def _on_config(self, revision: int, objects: dict[ResourceKey, Resource], changed: frozenset[ResourceKey]) -> None:
        self.revision, self.objects = revision, objects
        req = classify_change(objects, changed, self._we_labels)
        for key in changed:
            if key.kind in ENDPOINT_KINDS:
                if key in objects:
                    self._we_labels[key] = dict(objects[key].spec.get("labels") or {})
                else:
                    self._we_labels.pop(key, None)
        if self.discovery.push_context is None:
            self._we_labels = {k: dict(r.spec.get("labels") or {}) for k, r in objects.items() if k.kind in ENDPOINT_KINDS}
            await self.discovery.push(PushRequest(full=True, reasons=((Reason.GLOBAL, 1),)))  # first snapshot: serve now
            log.info("initial config loaded", revision=revision, objects=len(objects))
        else:
            self.discovery.config_update(req)

    async def _connected(self, proxy: Proxy) -> None:
        if not proxy.workload_group:
            return
        push = self.discovery.push_context
        group = None
        if push is not None:
            group = next(
                (c for c in push.configs.of("WorkloadGroup") if c.namespace == proxy.namespace and c.name == proxy.workload_group),
                None,
            )
        await self.autoreg.connected(proxy, group)

    def _disconnected(self, proxy: Proxy) -> None:
        self.autoreg.disconnected(proxy)

    async def start(self) -> None:
        await self.discovery.start()

    async def stop(self) -> None:
        await self.autoreg.close()
        await self.discovery.stop()
        await self.galley_client.close()
