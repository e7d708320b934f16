"""A stand-in for `runtime.dataplane.DataPlane` with exactly its interface (no sockets),
importable by worker processes as `tests.proxy.engines.fakes:FakeDataPlane`."""
from __future__ import annotations

import os


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
