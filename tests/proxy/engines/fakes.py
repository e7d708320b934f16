"""Stand-ins for the engine's collaborators: `FakeDataPlane` with exactly the interface of
`runtime.dataplane.DataPlane` (no sockets; importable by worker processes as
`tests.proxy.engines.fakes:FakeDataPlane`), a certificate manager, and AgentOptions."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path


class FakeDataPlane:
    instances: list["FakeDataPlane"] = []
    bind_errors: list[str] = []  # what apply() reports (class-wide, set by a test)

    def __init__(self, stats, secrets, node, *, worker_id: int = 0, reuse_port: bool = False):
        self.stats, self.secrets, self.node = stats, secrets, node
        self.worker_id, self.reuse_port = worker_id, reuse_port
        self.applied: list = []
        self.drained: float | None = None
        self.stopped = False
        self.requests = stats.counter("cluster.upstream_rq_total", (("worker", "any"),))
        FakeDataPlane.instances.append(self)

    async def apply(self, snapshot) -> list[str]:
        self.applied.append(snapshot)
        self.requests.value += 1
        return list(self.bind_errors) or list(filter(None, [os.environ.get("FAKE_BIND_ERROR", "")]))

    @property
    def ready(self) -> bool:
        return bool(self.applied) and not self.stopped

    def listeners_status(self):
        snap = self.applied[-1] if self.applied else None
        return [{"name": name, "address": str(listener.address)} for name, listener in
                sorted((snap.listeners if snap else {}).items())]

    def clusters_status(self):
        snap = self.applied[-1] if self.applied else None
        out = []
        for name, cluster in sorted((snap.clusters if snap else {}).items()):
            eps = snap.endpoints_for(cluster)
            hosts = [{"address": str(e.address), "stats": {"rq_total": 1, "cx_active": 0}, "weight": 1}
                     for e in (eps.endpoints if eps else ())]
            out.append({"name": name, "added_via_api": True, "hosts": hosts})
        return out

    async def drain(self, deadline: float) -> None:
        self.drained = deadline

    async def stop(self) -> None:
        self.stopped = True


# ---- the agent's side: a certificate manager and options -----------------------------------


def workload_cert(uri: str = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"):
    """A real WorkloadCert (chain + key + roots) from a throwaway CA."""
    from isthmus.citadel.certmanager import WorkloadCert
    from isthmus.citadel.spiffe import parse_spiffe_id
    from tests.pilot.xds.certs import CA

    ca = CA()
    leaf, key = ca.leaf([uri])
    now = time.time()
    return WorkloadCert(parse_spiffe_id(uri), key, (leaf.decode(), ca.pem.decode()), (ca.pem.decode(),),
                        now - 60, now + 3600, 1)


class FakeManager:
    """What the engine reads from citadel's CertificateManager."""

    def __init__(self, cert=None):
        self._cert = cert or workload_cert()
        self.version = 1
        self._changed = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._cert is not None

    def current(self):
        return self._cert

    def rotate(self, cert=None) -> None:
        self._cert = cert or workload_cert()
        self.version += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_changed(self, seen: int) -> int:
        while self.version == seen:
            await self._changed.wait()
        return self.version


def agent_options(pilot: str, run_dir: Path, *, concurrency: int = 1, delta: bool = False, workload=None,
                  plaintext: bool = True):
    from isthmus.proxy.agent import AgentOptions
    from tests.proxy.xds.pilot import PRODUCTPAGE

    return AgentOptions(workload=workload or PRODUCTPAGE, pilot=pilot, plaintext_xds=plaintext, ca="", token_file=None,
                        engine="python", run_dir=run_dir, admin_port=0, status_port=0, stats_port=0,
                        drain_seconds=0.1, delta=delta, concurrency=concurrency)
