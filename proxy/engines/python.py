"""The `python` engine: Isthmus's own data plane, configured by pilot over ADS.

`PythonEngine(opts, manager)` wires, per worker: `Stats`, `AgentSecrets` (certificate
manager + SDS-over-ADS secrets), `XdsClient` (the node exactly as the Envoy bootstrap
names it) and `runtime.dataplane.DataPlane`. `--concurrency 1` runs all of it in the
agent's process. `--concurrency N` starts N worker processes (`python -m
isthmus.proxy.engines.python`), each with its own xDS stream and DataPlane binding the
same listeners with SO_REUSEPORT; the agent feeds them the certificate over a pipe and
serves one admin port (and the 15090 stats port) for all: stats and /clusters counters
summed over workers, config_dump and listeners from worker 0, /ready when all are ready.
ready() = certificate loaded and a complete snapshot (nothing referenced missing) applied
with every listener bound; `exited` is set when a worker dies or after /quitquitquit.
"""
from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import itertools
import json
import os
import sys
import time
from typing import Any, Callable

from isthmus.proxy.admin import AdminServer, export_stats, log_level, merge_clusters, merge_stats, plain, set_log_level
from isthmus.proxy.bootstrap import WorkloadIdentity
from isthmus.proxy.secrets import AgentSecrets
from isthmus.proxy.stats import Stats
from isthmus.proxy.xds.client import Backoff, XdsClient, XdsTls
from isthmus.proxy.xds.node import build_node, node_info
from isthmus.shared.logging import get_logger
from isthmus.shared.service.runtime import release_free_memory

log = get_logger("proxy.engine")
DATAPLANE = "isthmus.proxy.runtime.dataplane:DataPlane"
XDS_STATS = {"cds": "cluster_manager.cds", "lds": "listener_manager.lds"}
PIPE_LIMIT = 256 * 1024 * 1024  # one JSON line per message; a config_dump can be large
TRIM_DELAY = 2.0  # seconds after a configuration is applied before the C heap is trimmed


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _load(factory: Callable | str) -> Callable:
    if callable(factory):
        return factory
    module, _, attr = factory.partition(":")
    return getattr(importlib.import_module(module), attr)


def _material(cert) -> tuple[bytes, bytes, bytes] | None:
    return None if cert is None else (cert.cert_chain_pem, cert.key_pem, cert.roots_pem)


class WorkerCore:
    """One DataPlane with its xDS client and secrets: the whole engine for N=1, one worker else."""

    def __init__(self, *, pilot: str, workload: WorkloadIdentity, delta: bool, plaintext: bool, certs,
                 dataplane: Callable | str, worker_id: int = 0, reuse_port: bool = False,
                 backoff: Backoff = Backoff(), warming_timeout: float = 15.0):
        self.node = node = build_node(workload)
        self.certs, self.started_at = certs, time.time()
        self.stats = Stats()
        self.secrets = AgentSecrets(certs)
        self.dataplane = _load(dataplane)(self.stats, self.secrets, node_info(workload), worker_id=worker_id,
                                          reuse_port=reuse_port)
        tls = None if plaintext else XdsTls(lambda: _material(certs.current()))
        self.client = XdsClient(pilot, node, self._apply, delta=delta, tls=tls, local_secret=self.secrets.has_local,
                                backoff=backoff, warming_timeout=warming_timeout)
        self.draining = False
        self._trim: asyncio.TimerHandle | None = None

    async def _apply(self, snapshot) -> list[str]:
        self.secrets.update(snapshot.secrets)
        errors = list(await _maybe(self.dataplane.apply(snapshot)) or ())
        if self._trim is None:  # the replaced config is garbage now; a burst of pushes trims once
            self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY, self._release)
        return errors

    def _release(self) -> None:
        self._trim = None
        release_free_memory()

    def ready(self) -> bool:
        # Not DataPlane.ready: it counts the agent's own secrets (default, ROOTCA) as missing.
        return self.certs.current() is not None and self.client.complete and not self.client.state.bind_errors \
            and not self.draining

    def scrape(self) -> Stats:
        """The stats, with the xDS client's state folded in (Envoy's names)."""
        self.stats.gauge("control_plane.connected_state").set(int(self.client.connected))
        for t in self.client.state.types.values():
            prefix = XDS_STATS.get(t.short)
            if prefix:
                self.stats.counter(f"{prefix}.update_attempt").value = t.responses
                self.stats.counter(f"{prefix}.update_success").value = t.acks
                self.stats.counter(f"{prefix}.update_rejected").value = t.nacks
        return self.stats

    def config_dump(self, include_eds: bool = True) -> dict:
        from isthmus.proxy.xds.dump import config_dump  # admin-only protos (bootstrap, config_dump): on first use

        return config_dump(self.node, self.client.state, self.secrets.local_protos(), include_eds=include_eds,
                           local_version=str(self.secrets.version), started_at=self.started_at)

    def clusters(self) -> list:
        return plain(list(self.dataplane.clusters_status()))

    def listeners(self) -> list:
        return plain(list(self.dataplane.listeners_status()))

    async def start(self) -> None:
        await self.client.start()

    async def drain(self, deadline: float) -> None:
        self.draining = True
        await _maybe(self.dataplane.drain(deadline))

    async def stop(self) -> None:
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        await self.client.stop()
        await _maybe(self.dataplane.stop())


# ---- worker processes -------------------------------------------------------------------

class WorkerHandle:
    """The agent's side of one worker process: JSON lines over its stdin/stdout."""

    def __init__(self, index: int, proc: asyncio.subprocess.Process):
        self.index, self.proc = index, proc
        self.ready = False
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read(), name=f"worker-{index}")

    def send(self, msg: dict) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(json.dumps(msg).encode() + b"\n")

    async def call(self, op: str, timeout: float = 5.0, **args: Any) -> Any:
        ident = next(self._ids)
        fut = self._pending[ident] = asyncio.get_running_loop().create_future()
        self.send({"id": ident, "op": op, **args})
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(ident, None)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("unreadable message from a proxy worker", worker=self.index, line=line[:200])
                continue
            if msg.get("event") == "status":
                self.ready = bool(msg["ready"])
            elif (fut := self._pending.get(msg.get("id"))) is not None and not fut.done():
                if "error" in msg:
                    fut.set_exception(RuntimeError(f"worker {self.index}: {msg['error']}"))
                else:
                    fut.set_result(msg.get("result"))
        self.ready = False
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"worker {self.index} exited"))


class PipedCerts:
    """A worker's certificate source: what the agent's manager sends over the pipe."""

    def __init__(self) -> None:
        self._cert, self.version = None, 0

    def current(self):
        return self._cert

    def set(self, d: dict) -> None:
        from isthmus.citadel.certmanager import WorkloadCert
        from isthmus.citadel.spiffe import SpiffeId

        self._cert = WorkloadCert(SpiffeId(*d["identity"]), d["key_pem"].encode(), tuple(d["chain"]),
                                  tuple(d["roots"]), d["not_before"], d["not_after"], d["serial"])
        self.version += 1


def cert_message(cert) -> dict:
    i = cert.identity
    return {"op": "cert", "cert": {"identity": [i.trust_domain, i.namespace, i.service_account],
                                   "key_pem": cert.key_pem.decode(), "chain": list(cert.chain), "roots": list(cert.roots),
                                   "not_before": cert.not_before, "not_after": cert.not_after, "serial": cert.serial}}


# ---- the engine -------------------------------------------------------------------------

class PythonEngine:
    def __init__(self, opts, manager, *, dataplane: Callable | str = DATAPLANE, backoff: Backoff = Backoff(),
                 warming_timeout: float = 15.0):
        self.opts, self.manager = opts, manager
        self.node = build_node(opts.workload)
        self.concurrency = max(1, opts.concurrency)
        self.dataplane, self.backoff, self.warming_timeout = dataplane, backoff, warming_timeout
        self.started_at = time.time()
        self.core: WorkerCore | None = None
        self.workers: list[WorkerHandle] = []
        self.admin: AdminServer | None = None
        self._exited: int | None = None
        self._stopping = False
        self._draining = False
        self._tasks: list[asyncio.Task] = []

    # ---- lifecycle (what the agent calls) -----------------------------------------------
    async def start(self) -> None:
        o = self.opts
        if self.concurrency == 1:
            self.core = WorkerCore(pilot=o.pilot, workload=o.workload, delta=o.delta, plaintext=o.plaintext_xds,
                                   certs=self.manager, dataplane=self.dataplane, backoff=self.backoff,
                                   warming_timeout=self.warming_timeout)
            await self.core.start()
        else:
            if not isinstance(self.dataplane, str):
                raise ValueError("--concurrency > 1 needs the DataPlane as an importable 'module:attr'")
            self.workers = [await self._spawn(i) for i in range(self.concurrency)]
            self._tasks.append(asyncio.get_running_loop().create_task(self._feed_certs(), name="worker certs"))
        stats_host = "0.0.0.0" if o.workload.capture_mode == "iptables" else "127.0.0.1"
        self.admin = AdminServer(self, o.admin_port, stats_port=o.stats_port, stats_host=stats_host)
        await self.admin.start()

    async def _spawn(self, index: int) -> WorkerHandle:
        o = self.opts
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "isthmus.proxy.engines.python",
                                                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                    limit=PIPE_LIMIT)
        handle = WorkerHandle(index, proc)
        handle.send({"worker_id": index, "pilot": o.pilot, "delta": o.delta, "plaintext": o.plaintext_xds,
                     "workload": dataclasses.asdict(o.workload), "dataplane": self.dataplane,
                     "backoff": dataclasses.asdict(self.backoff), "warming_timeout": self.warming_timeout,
                     "log_level": log_level()})
        if (cert := self.manager.current()) is not None:
            handle.send(cert_message(cert))
        self._tasks.append(asyncio.get_running_loop().create_task(self._watch(handle), name=f"watch worker {index}"))
        return handle

    async def _watch(self, handle: WorkerHandle) -> None:
        code = await handle.proc.wait()
        if not self._stopping and self._exited is None:
            log.error("proxy worker died", worker=handle.index, code=code)
            self._exited = code or 1

    async def _feed_certs(self) -> None:
        seen = self.manager.version
        while True:
            seen = await self.manager.wait_changed(seen)
            if (cert := self.manager.current()) is not None:
                for w in self.workers:
                    w.send(cert_message(cert))

    @property
    def exited(self) -> int | None:
        return self._exited

    def _live(self) -> bool:
        if not self.manager.ready or self._draining or self._stopping:
            return False
        if self.core is not None:
            return self.core.ready()
        return bool(self.workers) and all(w.ready for w in self.workers)

    async def ready(self) -> bool:
        return self._live()

    async def drain(self, deadline: float) -> None:
        self._draining = True
        if self.core is not None:
            await self.core.drain(deadline)
        else:
            await asyncio.gather(*(w.call("drain", timeout=deadline + 5, deadline=deadline) for w in self.workers),
                                 return_exceptions=True)

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        if self.admin is not None:
            await self.admin.stop()
            self.admin = None
        if self.core is not None:
            await self.core.stop()
        for w in self.workers:
            w.send({"op": "stop"})
        for w in self.workers:
            try:
                await asyncio.wait_for(w.proc.wait(), 10)
            except asyncio.TimeoutError:
                w.proc.kill()
                await w.proc.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- AdminBackend -------------------------------------------------------------------
    def state(self) -> str:
        return "DRAINING" if self._draining else "LIVE" if self._live() else "PRE_INITIALIZING"

    async def _all(self, op: str, **args: Any) -> list:
        return list(await asyncio.gather(*(w.call(op, **args) for w in self.workers)))

    async def stats(self) -> Stats:
        if self.core is not None:
            return self.core.scrape()
        return merge_stats(await self._all("stats"))

    async def config_dump(self, include_eds: bool = True) -> dict:
        if self.core is not None:
            return self.core.config_dump(include_eds)
        return await self.workers[0].call("config_dump", include_eds=include_eds)

    async def clusters(self) -> list:
        return self.core.clusters() if self.core is not None else merge_clusters(await self._all("clusters"))

    async def listeners(self) -> list:
        return self.core.listeners() if self.core is not None else await self.workers[0].call("listeners")

    async def xds_status(self) -> Any:
        if self.core is not None:
            return self.core.client.status()
        return [{"worker": w.index, "ready": w.ready, **status} for w, status in
                zip(self.workers, await self._all("xds"))]

    def set_log_level(self, level: str) -> None:
        set_log_level(level)
        for w in self.workers:
            w.send({"op": "log_level", "level": level})

    async def quit(self) -> None:
        await asyncio.sleep(0.05)  # let the admin response go out first
        await self.drain(self.opts.drain_seconds)
        await self.stop()
        self._exited = 0

    async def drain_listeners(self, *, graceful: bool, inbound_only: bool) -> None:
        await self.drain(self.opts.drain_seconds if graceful else 0.0)


# ---- the worker process ---------------------------------------------------------------

async def _worker_main() -> None:
    from isthmus.shared import logging as slog

    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # stray prints must not corrupt the protocol
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=PIPE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def emit(msg: dict) -> None:
        out.write(json.dumps(msg, default=str).encode() + b"\n")

    cfg = json.loads(await reader.readline())
    slog.configure(f"proxy-worker-{cfg['worker_id']}", level=cfg["log_level"])
    certs = PipedCerts()
    workload = cfg["workload"]
    workload.update(ports=tuple(workload["ports"]), gateway_port_map=tuple(map(tuple, workload.get("gateway_port_map", ()))))
    core = WorkerCore(pilot=cfg["pilot"], workload=WorkloadIdentity(**workload), delta=cfg["delta"], plaintext=cfg["plaintext"],
        certs=certs, dataplane=cfg["dataplane"], worker_id=cfg["worker_id"], reuse_port=True,
        backoff=Backoff(**cfg["backoff"]), warming_timeout=cfg["warming_timeout"])

    async def report() -> None:
        last = None
        while True:
            if (now := core.ready()) != last:
                emit({"event": "status", "ready": now})
                last = now
            await asyncio.sleep(0.1)

    ops: dict[str, Callable] = {
        "stats": lambda m: export_stats(core.scrape()), "config_dump": lambda m: core.config_dump(m["include_eds"]),
        "clusters": lambda m: core.clusters(), "listeners": lambda m: core.listeners(),
        "drain": lambda m: core.drain(m["deadline"]), "xds": lambda m: plain(core.client.status()),
    }

    async def run(msg: dict) -> None:
        try:
            emit({"id": msg["id"], "result": await _maybe(ops[msg["op"]](msg))})
        except Exception as exc:  # noqa: BLE001 - reported to the agent
            emit({"id": msg["id"], "error": f"{type(exc).__name__}: {exc}"})

    tasks = {loop.create_task(report())}
    started = False
    try:
        while line := await reader.readline():
            msg = json.loads(line)
            op = msg.get("op")
            if op == "cert":
                certs.set(msg["cert"])
                if not started:
                    started = True
                    await core.start()
            elif op == "log_level":
                set_log_level(msg["level"])
            elif op == "stop":
                break
            elif op in ops:
                task = loop.create_task(run(msg))  # a drain must not hold up a scrape
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    finally:
        for t in list(tasks):
            t.cancel()
        await core.stop()


if __name__ == "__main__":
    import uvloop

    uvloop.run(_worker_main())
