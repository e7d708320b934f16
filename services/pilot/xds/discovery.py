"""DiscoveryServer: from PushRequests to pushes on every concerned connection.

Owns the current immutable PushContext. `config_update(req)` feeds the debouncer;
each debounced request rebuilds the PushContext through the injected builder
(`build(previous, request, version)`, sync or async, called for EDS-only requests
too, which must still see the new endpoints; on failure the previous one stays and
pilot_xds_push_context_errors counts it) and enqueues every connection in
the PushQueue; `push_concurrency` workers hand each connection its merged request,
which its stream turns into responses from the then-current PushContext, narrowed
by `relevance.push_plan`. It is the `XdsHost` the generic `AdsServer` serves.
"""
from __future__ import annotations

import asyncio
import datetime
import inspect
import itertools
import socket
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

import grpc
from envoy.config.core.v3 import base_pb2
from google.protobuf.message import Message

from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import PushContext
from isthmus.pilot.push.debounce import DebounceSettings, Debouncer
from isthmus.pilot.push.queue import PushQueue
from isthmus.pilot.push.request import PushRequest
from isthmus.pilot.xds import relevance
from isthmus.pilot.xds.connection import Connection, PushEvent
from isthmus.pilot.xds.generators import Generator, default_generators
from isthmus.pilot.xds.metrics import XdsMetrics
from isthmus.pilot.xds.node import IdentityMismatch, NodeInvalid, bind_identity, proxy_from_node
from isthmus.pilot.xds.server import AdsServer, Refused, deliver
from isthmus.pilot.xds.status import SyncEntry, sync_entries
from isthmus.pilot.xds.typeurls import ENDPOINT, WILDCARD_TYPES, order_key
from isthmus.shared.logging import get_logger

log = get_logger(__name__)

PushContextBuilder = Callable[[PushContext | None, PushRequest, str], "PushContext | Awaitable[PushContext]"]
ProxyHook = Callable[[Proxy], "None | Awaitable[None]"]


@dataclass(frozen=True)
class PushRecord:
    """The last push, for /debug/push_status."""

    version: str
    request: PushRequest
    at: float  # wall clock
    build_seconds: float
    connections: int


class DiscoveryServer:
    def __init__(
        self,
        build_push_context: PushContextBuilder,
        *,
        generators: Mapping[str, Generator] | None = None,
        initial_push: PushContext | None = None,
        debounce: DebounceSettings = DebounceSettings(),
        metrics: XdsMetrics | None = None,
        trust_domain: str | None = None,
        push_concurrency: int = 100,
        send_timeout: float = 10.0,
        instance_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_proxy_connected: ProxyHook | None = None,
        on_proxy_disconnected: ProxyHook | None = None,
    ):
        self._build = build_push_context
        self.generators = generators if generators is not None else default_generators()
        self._push: PushContext | None = initial_push
        self.metrics = metrics or XdsMetrics()
        self.trust_domain = trust_domain
        self.instance_id = instance_id or socket.gethostname()
        self.clock = clock
        self.send_timeout = send_timeout
        self._concurrency = push_concurrency
        self._on_connected, self._on_disconnected = on_proxy_connected, on_proxy_disconnected
        self._connections: dict[str, Connection] = {}
        self.queue: PushQueue[Connection] = PushQueue()
        self.debouncer = Debouncer(self.push, debounce, clock)
        self._versions = itertools.count(1)
        self._tasks: list[asyncio.Task] = []
        self._hook_tasks: set[asyncio.Task] = set()
        self.last_push: PushRecord | None = None
        self.ads = AdsServer(self, self.metrics, clock)

    # ---- lifecycle and inputs -------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.debouncer.run(), name="xds-debounce")]
        self._tasks += [loop.create_task(self._worker(), name=f"xds-push-{i}") for i in range(self._concurrency)]

    async def stop(self) -> None:
        self.queue.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def config_update(self, req: PushRequest) -> None:
        """A change happened (config, endpoints, ...): push after the debounce."""
        if not req.start:
            req = PushRequest(req.full, req.configs_updated, req.reasons, self.clock(), req.eds_hosts)
        self.debouncer.submit(req)

    @property
    def push_context(self) -> PushContext | None:
        return self._push

    @property
    def ready(self) -> bool:
        return self._push is not None

    def next_version(self) -> str:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{now}/{next(self._versions)}"

    async def push(self, req: PushRequest) -> None:
        """Rebuild the PushContext for `req` and enqueue every connection (no debounce)."""
        started = self.clock()
        for reason, count in req.reasons:
            self.metrics.push_triggers.labels(reason.value).inc(count)
        if req.start:
            self.metrics.debounced.observe(max(0.0, started - req.start))
        try:
            built = self._build(self._push, req, self.next_version())
            push = await built if inspect.isawaitable(built) else built
        except Exception:
            self.metrics.push_context_errors.inc()
            log.exception("PushContext build failed; keeping the previous one", full=req.full)
            return
        self._push = push
        cons = list(self._connections.values())
        self.last_push = PushRecord(push.version, req, time.time(), self.clock() - started, len(cons))
        for con in cons:
            self.queue.enqueue(con, req)
        log.info("push", version=push.version, full=req.full, connections=len(cons),
                 configs=len(req.configs_updated), eds_hosts=len(req.eds_hosts))

    async def _worker(self) -> None:
        while True:
            item = await self.queue.dequeue()
            if item is None:
                return
            con, req = item
            try:
                done = asyncio.get_running_loop().create_future()
                if deliver(con, PushEvent(req, self._push, done)):
                    await asyncio.wait_for(done, self.send_timeout)
            except asyncio.TimeoutError:
                log.warning("push to proxy timed out", proxy=con.proxy_id, timeout=self.send_timeout)
            finally:
                self.queue.mark_done(con)

    # ---- XdsHost ---------------------------------------------------------------
    def admit(self, node: base_pb2.Node, identity: str | None) -> Proxy:
        if self._push is None:
            raise Refused(grpc.StatusCode.UNAVAILABLE, "pilot has not loaded its configuration yet; retry")
        try:
            proxy = proxy_from_node(node)
            return bind_identity(proxy, identity, self.trust_domain or self._push.mesh.trust_domain)
        except NodeInvalid as exc:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        except IdentityMismatch as exc:
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from exc

    def connected(self, con: Connection) -> None:
        self._connections[con.id] = con
        self.metrics.connected.set(len(self._connections))
        self._hook(self._on_connected, con.proxy)

    def disconnected(self, con: Connection) -> None:
        self._connections.pop(con.id, None)
        self.queue.remove(con)
        self.metrics.connected.set(len(self._connections))
        self._hook(self._on_disconnected, con.proxy)

    def _hook(self, hook: ProxyHook | None, proxy: Proxy) -> None:
        if hook is None:
            return
        try:
            result = hook(proxy)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_tasks.discard)
        except Exception:
            log.exception("proxy hook failed", proxy=proxy.id)

    def current_context(self) -> PushContext | None:
        return self._push

    def version(self, context: PushContext) -> str:
        return context.version

    def generate(self, con: Connection, type_url: str, names: frozenset[str] | None, context: PushContext,
                 request: PushRequest | None) -> Sequence[Message] | None:
        gen = self.generators.get(type_url)
        if gen is None:
            return None
        return gen.generate(con.proxy, context, names)

    def push_plan(self, con: Connection, event: PushEvent) -> list[tuple[str, frozenset[str] | None]]:
        eds = con.watched.get(ENDPOINT)
        root = event.context.mesh.root_namespace
        return relevance.push_plan(con.proxy, event.request, root, eds.names if eds else ())

    # ---- views (debug pages, CLI) ---------------------------------------------
    def connections(self) -> list[Connection]:
        return sorted(self._connections.values(), key=lambda c: c.id)

    def syncz(self) -> list[SyncEntry]:
        return sync_entries(self.connections(), self.instance_id)

    def find_connection(self, proxy_id: str) -> Connection | None:
        """By node id, connection id, or proxy name (`reviews-v1-abc.default`); newest first."""
        for con in reversed(self.connections()):
            if proxy_id in (con.proxy_id, con.id, getattr(con.proxy, "name", None)):
                return con
        return None

    def config_dump(self, con: Connection) -> dict[str, list[Message]]:
        """What the proxy would get now, per type URL in push order: wildcard types in full,
        named types for the names it subscribed to."""
        push = self._push
        out: dict[str, list[Message]] = {}
        if push is None:
            return out
        for type_url in sorted(self.generators, key=order_key):
            w = con.watched.get(type_url)
            if type_url in WILDCARD_TYPES:
                names = None
            elif w is None or not w.names:
                continue
            else:
                names = w.names
            out[type_url] = list(self.generate(con, type_url, names, push, None) or [])
        return out

    def proxies(self) -> Iterable[Proxy]:
        return [c.proxy for c in self.connections()]

    def status_snapshot(self) -> dict[str, Any]:
        lp = self.last_push
        d = self.debouncer
        return {
            "instance": self.instance_id,
            "version": self._push.version if self._push else None,
            "connected": len(self._connections),
            "queue": {"waiting": len(self.queue), "in_progress": self.queue.in_progress},
            "debounce": {"requests": d.requests, "pushes": d.pushes, "pending": d.state.pending is not None,
                         "pushing": d.state.pushing, "quiet_s": d.settings.quiet, "max_delay_s": d.settings.max_delay},
            "last_push": None if lp is None else {
                "version": lp.version, "at": lp.at, "full": lp.request.full, "build_seconds": lp.build_seconds,
                "connections": lp.connections, "reasons": {r.value: n for r, n in lp.request.reasons},
                "configs_updated": sorted(str(k) for k in lp.request.configs_updated),
                "eds_hosts": sorted(lp.request.eds_hosts),
            },
        }
