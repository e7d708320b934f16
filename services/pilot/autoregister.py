"""WorkloadGroup auto-registration: a connecting proxy becomes a WorkloadEntry.

A proxy whose node metadata names a WorkloadGroup gets a WorkloadEntry
`<group>-<ip>` (the group's template + the proxy's address, ports and labels),
written through galley like any config; when its last connection closes, the entry
is removed after a grace period unless the proxy reconnects. `plan_entry` is pure.
"""
from __future__ import annotations

import asyncio
import json
import re
from typing import Mapping

from isthmus.galley.client import AsyncGalleyClient, GalleyError
from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import Config
from isthmus.pilot.model.registry import TLS_MODE_LABEL
from isthmus.shared.logging import get_logger
from isthmus.shared.protos import galley_pb2

log = get_logger("pilot.autoregister")

GROUP_ANNOTATION = "istio.io/autoRegistrationGroup"
CONNECTED_ANNOTATION = "istio.io/workloadController"


def entry_name(group: str, ip: str) -> str:
    """`<group>-<ip>` with dots/colons made DNS-safe, as Istio names them."""
    return re.sub(r"[^a-z0-9-]", "-", f"{group}-{ip}".lower()).strip("-")[:253]


def plan_entry(proxy: Proxy, group: Config) -> galley_pb2.Resource:
    """The WorkloadEntry for `proxy` in `group` (pure)."""
    template = group.resource.spec.get("template") or {}
    meta = group.resource.spec.get("metadata") or {}
    labels: dict[str, str] = {**(meta.get("labels") or {}), **(template.get("labels") or {}), **dict(proxy.labels)}
    labels[TLS_MODE_LABEL] = "istio"
    ports: dict[str, int] = dict(template.get("ports") or {})
    for wp in proxy.ports:
        if wp.name:
            ports[wp.name] = wp.proxy_port or wp.port
    spec = {k: v for k, v in template.items() if k not in ("address", "labels", "ports")}
    spec.update({"address": proxy.ip_addresses[0], "labels": labels})
    if ports:
        spec["ports"] = ports
    spec.setdefault("serviceAccount", proxy.service_account)
    annotations: Mapping[str, str] = {**(meta.get("annotations") or {}), GROUP_ANNOTATION: group.name, CONNECTED_ANNOTATION: "pilot"}
    return galley_pb2.Resource(
        api_version="networking.istio.io/v1",
        kind="WorkloadEntry",
        namespace=group.namespace,
        name=entry_name(group.name, proxy.ip_addresses[0]),
        labels=labels,
        annotations=dict(annotations),
        spec_json=json.dumps(spec, sort_keys=True),
    )


class AutoRegistration:
    """Tracks connections per entry; writes and removes WorkloadEntries through galley."""

    def __init__(self, galley: AsyncGalleyClient, grace_period: float = 10.0):
        self.galley = galley
        self.grace_period = grace_period
        self._connections: dict[tuple[str, str], int] = {}
        self._removals: dict[tuple[str, str], asyncio.Task] = {}

    async def connected(self, proxy: Proxy, group: Config | None) -> None:
        if not proxy.workload_group:
            return
        if group is None:
            log.warning("proxy names a WorkloadGroup that does not exist; not registering it",
                        proxy=proxy.id, group=f"{proxy.namespace}/{proxy.workload_group}")
            return
        wanted = plan_entry(proxy, group)
        key = (wanted.namespace, wanted.name)
        self._connections[key] = self._connections.get(key, 0) + 1
        pending = self._removals.pop(key, None)
        if pending:
            pending.cancel()
        try:
            await self.galley.apply([wanted])
            log.info("workload auto-registered", entry=f"{wanted.namespace}/{wanted.name}", proxy=proxy.id)
        except GalleyError as exc:
            log.error("auto-registration failed", entry=f"{wanted.namespace}/{wanted.name}", error=str(exc))

    def disconnected(self, proxy: Proxy) -> None:
        if not proxy.workload_group or not proxy.ip_addresses:
            return
        key = (proxy.namespace, entry_name(proxy.workload_group, proxy.ip_addresses[0]))
        left = self._connections.get(key, 0) - 1
        if left > 0:
            self._connections[key] = left
            return
        self._connections.pop(key, None)
        self._removals[key] = asyncio.get_running_loop().create_task(self._remove_later(key))

    async def _remove_later(self, key: tuple[str, str]) -> None:
        await asyncio.sleep(self.grace_period)
        if key in self._connections:
            return
        try:
            await self.galley.delete("WorkloadEntry", key[0], key[1])
            log.info("auto-registered workload removed after grace period", entry=f"{key[0]}/{key[1]}")
        except GalleyError as exc:
            log.warning("could not remove auto-registered workload", entry=f"{key[0]}/{key[1]}", error=str(exc))
        finally:
            self._removals.pop(key, None)

    async def close(self) -> None:
        for task in self._removals.values():
            task.cancel()
