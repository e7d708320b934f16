"""`DataPlane`: the proxy's sockets, driven by Snapshots (the engine's only handle).

    dp = DataPlane(stats, secrets, node, reuse_port=True)
    errors = await dp.apply(snapshot)   # bind/close/swap listeners; NACK LDS on errors
    dp.ready                            # first snapshot fully bound, nothing missing
    await dp.drain(5.0); await dp.stop()

`apply` swaps the `Generation` atomically: new connections get its listeners, a
connection keeps the listener config (filter chain, HCM) it was accepted with, and,
as in Envoy, each new request sees the newest routes and clusters; connections of a
listener whose config changed (or that went away) drain. Cluster state (hosts, pools, breakers, outlier ejections)
carries over while a cluster's proto is unchanged (runtime/cluster.py). Removed
listeners stop accepting and their connections drain. A ticker (4 Hz) flushes access
logs, and once a second runs idle timeouts and pool idle sweeps.
"""
from __future__ import annotations

import asyncio

from isthmus.proxy.runtime.access_log import Sinks
from isthmus.proxy.runtime.cluster import ClusterManager
from isthmus.proxy.runtime.context import DEFAULT_REQUEST_HEADERS_TIMEOUT, Runtime
from isthmus.proxy.runtime.generation import Generation
from isthmus.proxy.runtime.node import NodeInfo
from isthmus.proxy.runtime.server import ListenerServer, address_key
from isthmus.proxy.runtime.status import clusters_status, clusters_text
from isthmus.proxy.runtime.tls import SecretProvider, TlsContexts
from isthmus.proxy.stats import Stats

TICK = 0.25


class DataPlane:
    def __init__(self, stats: Stats, secrets: SecretProvider, node: NodeInfo, *, loop: asyncio.AbstractEventLoop | None = None,
                 worker_id: int = 0, reuse_port: bool = False,
                 request_headers_timeout: float = DEFAULT_REQUEST_HEADERS_TIMEOUT) -> None:
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = asyncio.get_event_loop_policy().get_event_loop()
        self.loop = loop
        self.stats = stats
        self.node = node
        self.worker_id = worker_id
        self.reuse_port = reuse_port
        self.sinks = Sinks()
        self.rt = Runtime(loop, stats, node, TlsContexts(secrets), self.sinks, worker_id=worker_id,
                          request_headers_timeout=request_headers_timeout)
        self.clusters = ClusterManager(self.rt)
        self.generation: Generation | None = None
        self.snapshot = None
        self._servers: dict[str, ListenerServer] = {}
        self._errors: dict[str, str] = {}
        self._ready = False
        self._ticker: asyncio.TimerHandle | None = None
        self._ticks = 0
        self._stopped = False

    # -- config -------------------------------------------------------------------------
    async def apply(self, snapshot) -> list[str]:
        """Reconcile sockets and runtime state with `snapshot`; returns bind errors
        ("listener NAME on ADDRESS: reason") for the xDS client to NACK LDS with."""
        if self._stopped:
            return ["data plane stopped"]
        clusters = self.clusters.reconcile(snapshot)
        gen = Generation(snapshot, clusters, self.rt)
        wanted: dict[str, object] = {}
        for lr in gen.listeners.values():
            if lr.config.bind_to_port:
                wanted.setdefault(address_key(lr.config.address), lr)
        for key in [k for k in self._servers if k not in wanted]:
            self._servers.pop(key).close()
            for conn in list(self.rt.connections):
                if address_key(conn.listener.config.address) == key:
                    conn.drain()
        errors: list[str] = []
        self._errors = {}
        for key, lr in wanted.items():
            server = self._servers.get(key)
            if server is not None:
                server.listener = lr
                continue
            server = ListenerServer(self.rt, lr, self.reuse_port)
            reason = await server.bind()
            if reason is not None:
                msg = f"listener {lr.config.name!r} on {key}: {reason}"
                errors.append(msg)
                self._errors[lr.config.name] = msg
                continue
            self._servers[key] = server
        self._drain_changed_listeners(snapshot)
        self.generation = self.rt.generation = gen
        self.snapshot = snapshot
        if not errors and self._complete(snapshot):
            self._ready = True
        if self._ticker is None:
            self._ticker = self.loop.call_later(TICK, self._tick)
        return errors

    def _drain_changed_listeners(self, snapshot) -> None:
        """Envoy drains the connections of a listener whose config changed (or that is gone);
        route and cluster updates, instead, reach existing connections' new requests."""
        old = self.snapshot
        if old is None:
            return
        url = "type.googleapis.com/envoy.config.listener.v3.Listener"
        before, after = old.resources.get(url, {}), snapshot.resources.get(url, {})
        changed = {name for name, proto in before.items() if after.get(name) != proto}
        if not changed:
            return
        for conn in list(self.rt.connections):
            if conn.listener.config.name in changed:
                conn.drain()

    def _complete(self, snapshot) -> bool:
        """Nothing referenced is missing (secrets may come from the SecretProvider)."""
        missing = snapshot.missing()
        secrets = self.rt.tls.secrets
        return not missing.routes and not missing.endpoints and all(secrets.get(n) is not None for n in missing.secrets)

    @property
    def ready(self) -> bool:
        return self._ready

    # -- lifecycle ------------------------------------------------------------------------
    async def drain(self, deadline_s: float) -> None:
        """Stop accepting, let in-flight requests finish, close idle keep-alives."""
        self.rt.draining = True
        for server in self._servers.values():
            server.close()
        for conn in list(self.rt.connections):
            conn.drain()
        end = self.loop.time() + max(0.0, deadline_s)
        while self.rt.connections and self.loop.time() < end:
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stopped = True
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        for conn in list(self.rt.connections):
            conn.close()
        for state in self.clusters.states.values():
            for info in state.all_hosts():
                for pool in info.pools.values():
                    for c in list(pool.conns.values()):
                        c.close()
        self.clusters.stop()
        self.sinks.close()
        await asyncio.sleep(0)

    def _tick(self) -> None:
        self._ticker = None
        if self._stopped:
            return
        self.sinks.flush()
        self._ticks += 1
        if self._ticks % 4 == 0:
            now = self.loop.time()
            for conn in list(self.rt.connections):
                conn.tick(now)
            for state in self.clusters.states.values():
                for info in state.all_hosts():
                    pools = info.pools
                    for key in list(pools):
                        pool = pools[key]
                        pool.tick()
                        if pool.draining and pool.idle:
                            del pools[key]
        self._ticker = self.loop.call_later(TICK, self._tick)

    # -- admin ------------------------------------------------------------------------------
    def listeners_status(self) -> list[dict]:
        out = []
        gen = self.generation
        if gen is None:
            return out
        for name, lr in gen.listeners.items():
            key = address_key(lr.config.address)
            server = self._servers.get(key)
            bound = server.bound_address if server is not None and server.listener is lr else None
            out.append({
                "name": name, "address": key, "bind_to_port": lr.config.bind_to_port,
                "bound": bound is not None, "local_address": list(bound) if bound else None,
                "error": self._errors.get(name, ""),
                "connections": sum(1 for c in self.rt.connections if c.listener is lr),
            })
        return out

    def clusters_status(self) -> list[dict]:
        return clusters_status(self.clusters.states)

    def clusters_text(self) -> str:
        """Envoy's admin /clusters text: `cluster::host::stat::value` lines."""
        return clusters_text(self.clusters.states)

    def bound_port(self, listener_name: str) -> int | None:
        """The port a listener actually bound (for port 0 in tests)."""
        gen = self.generation
        if gen is None or listener_name not in gen.listeners:
            return None
        server = self._servers.get(address_key(gen.listeners[listener_name].config.address))
        addr = server.bound_address if server is not None else None
        return addr[1] if addr else None
