"""Simulated ADS clients for the convergence benchmark: many SotW streams in one process.

Each `SimClient` behaves as Envoy does on the wire — CDS and LDS wildcard, EDS for the EDS
clusters it was given, RDS for the route names its listeners name, an ACK for every
response, a new stream with backoff when one breaks — and records when it ACKed the first
response that satisfies a `Watch`.
Decoding what a follow-up request needs (cluster and route names) is cached across
clients by the response's bytes, so the simulator stays light beside pilot.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Callable

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import json_format

PREFIX = "type.googleapis.com/envoy."
CDS = PREFIX + "config.cluster.v3.Cluster"
EDS = PREFIX + "config.endpoint.v3.ClusterLoadAssignment"
LDS = PREFIX + "config.listener.v3.Listener"
RDS = PREFIX + "config.route.v3.RouteConfiguration"
TYPES = (CDS, EDS, LDS, RDS)
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 256 * 1024 * 1024),
                   ("grpc.max_send_message_length", 64 * 1024 * 1024)]


def sidecar_node(name: str, namespace: str, ip: str) -> base_pb2.Node:
    node = base_pb2.Node(id=f"sidecar~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local", cluster="Kubernetes")
    json_format.ParseDict({"NAMESPACE": namespace, "LABELS": {"app": name.rsplit("-", 1)[0]},
                           "ISTIO_VERSION": "1.24.0"}, node.metadata)
    return node


def _digest(resp: discovery_pb2.DiscoveryResponse) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for r in resp.resources:
        h.update(r.value)
    return h.digest()


class Decoder:
    """What follow-up requests a response calls for, decoded once per distinct content."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bytes], tuple[str, ...]] = {}

    def follow_up(self, resp: discovery_pb2.DiscoveryResponse) -> tuple[str, ...]:
        key = (resp.type_url, _digest(resp))
        if key not in self._cache:
            self._cache[key] = self._decode(resp)
        return self._cache[key]

    @staticmethod
    def _decode(resp: discovery_pb2.DiscoveryResponse) -> tuple[str, ...]:
        names: list[str] = []
        if resp.type_url == CDS:
            for r in resp.resources:
                c = cluster_pb2.Cluster.FromString(r.value)
                if c.type == cluster_pb2.Cluster.EDS:
                    names.append(c.eds_cluster_config.service_name or c.name)
        elif resp.type_url == LDS:
            for r in resp.resources:
                listener = listener_pb2.Listener.FromString(r.value)
                for chain in [*listener.filter_chains, listener.default_filter_chain]:
                    for f in chain.filters:
                        if f.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
                            hcm = hcm_pb2.HttpConnectionManager()
                            f.typed_config.Unpack(hcm)
                            if hcm.HasField("rds"):
                                names.append(hcm.rds.route_config_name)
        return tuple(sorted(set(names)))


@dataclass
class Watch:
    """The first ACKed response of `type_url` for which `matches(resp)` is true marks the client done."""
    type_url: str
    matches: Callable[[discovery_pb2.DiscoveryResponse], bool]


class SimClient:
    def __init__(self, channel: grpc.aio.Channel, node: base_pb2.Node, decoder: Decoder):
        self.node = node
        self.decoder = decoder
        self.stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self.call = None
        self.reconnects = 0
        self.last_error: str | None = None
        self.acked: dict[str, str] = {}  # type → last ACKed version
        self.subscribed: dict[str, tuple[str, ...]] = {EDS: (), RDS: ()}
        self.last: dict[str, discovery_pb2.DiscoveryResponse] = {}
        self.cluster_count = 0
        self.watch: Watch | None = None
        self.reached_at: float | None = None
        self.reached = asyncio.Event()
        self.error: BaseException | None = None
        self._sent_node = False
        self._task: asyncio.Task | None = None

    @property
    def synced(self) -> bool:
        return all(t in self.acked for t in TYPES)

    def arm(self, watch: Watch) -> None:
        self.watch, self.reached_at = watch, None
        self.reached.clear()

    async def _send(self, type_url: str, names=(), version: str = "", nonce: str = "") -> None:
        req = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=list(names), version_info=version,
                                             response_nonce=nonce)
        if not self._sent_node:
            req.node.CopyFrom(self.node)
            self._sent_node = True
        await self.call.write(req)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """One ADS stream at a time; a stream that breaks is opened again with backoff, as Envoy does."""
        backoff = 0.5
        try:
            while True:
                self.call = self.stub.StreamAggregatedResources()
                self._sent_node = False
                try:
                    await self._subscribe()
                    while (resp := await self.call.read()) is not grpc.aio.EOF:
                        await self._handle(resp)
                        backoff = 0.5
                except grpc.aio.AioRpcError as exc:
                    self.last_error = describe_error(exc)
                self.reconnects += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # noqa: BLE001 - recorded, the benchmark reports it
            self.error = exc
            self.reached.set()

    async def _subscribe(self) -> None:
        """First requests on a stream: wildcard CDS and LDS, then what this client already follows."""
        for t in (CDS, LDS, EDS, RDS):
            if t in (CDS, LDS) or self.subscribed[t]:
                await self._send(t, self.subscribed.get(t, ()), self.acked.get(t, ""))

    async def _handle(self, resp: discovery_pb2.DiscoveryResponse) -> None:
        t = resp.type_url
        names = self.subscribed.get(t, ())
        await self._send(t, names, resp.version_info, resp.nonce)  # ACK
        self.acked[t] = resp.version_info
        self.last[t] = resp
        if self.watch is not None and self.reached_at is None and self.watch.type_url == t and self.watch.matches(resp):
            self.reached_at = time.perf_counter()
            self.reached.set()
        if t in (CDS, LDS):
            if t == CDS:
                self.cluster_count = len(resp.resources)
            follow = EDS if t == CDS else RDS
            wanted = self.decoder.follow_up(resp)
            if wanted != self.subscribed[follow]:
                self.subscribed[follow] = wanted
                prev = self.last.get(follow)
                await self._send(follow, wanted, prev.version_info if prev else "", prev.nonce if prev else "")

    async def close(self) -> None:
        if self.call is not None:
            self.call.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


class Fleet:
    """N clients, each on its own channel (its own TCP connection, as N Envoys), in one process."""

    def __init__(self, address: str, count: int, namespace: str, per_channel: int = 1):
        self.decoder = Decoder()
        self.channels = [grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
                         for _ in range((count + per_channel - 1) // per_channel)]
        self.clients = [SimClient(self.channels[i // per_channel],
                                  sidecar_node(f"sim-{i}", namespace, f"127.0.{i // 250 + 10}.{i % 250 + 1}"),
                                  self.decoder) for i in range(count)]

    async def ramp(self, batch: int, ready: Callable[[SimClient], bool], timeout: float) -> None:
        """Connect `batch` clients at a time, each batch once the previous one is `ready`."""
        for i in range(0, len(self.clients), batch):
            group = self.clients[i:i + batch]
            for c in group:
                c.start()
            await self.wait(ready, timeout, f"clients {i + 1}–{i + len(group)} synced", group)

    def reconnects(self) -> int:
        return sum(c.reconnects for c in self.clients)

    def errors(self) -> list[str]:
        return [f"{c.node.id}: {describe_error(c.error)}" for c in self.clients if c.error is not None]

    async def wait(self, predicate: Callable[[SimClient], bool], timeout: float, what: str,
                   clients: list[SimClient] | None = None) -> None:
        clients = self.clients if clients is None else clients
        deadline = time.monotonic() + timeout
        while not all(predicate(c) for c in clients):
            if errs := self.errors():
                raise RuntimeError(f"{what}: {len(errs)} client(s) failed, first: {errs[0][:300]}")
            if time.monotonic() > deadline:
                done = sum(predicate(c) for c in clients)
                cut = [c.last_error for c in clients if c.last_error]
                raise TimeoutError(f"{what}: only {done}/{len(clients)} clients after {timeout:.0f}s"
                                   + (f"; last stream error: {cut[-1]}" if cut else ""))
            await asyncio.sleep(0.01)

    def arm(self, watch: Watch) -> None:
        for c in self.clients:
            c.arm(watch)

    async def reached(self, started: float, timeout: float, what: str) -> list[float]:
        """Seconds from `started` until each client ACKed what its watch waits for."""
        await self.wait(lambda c: c.reached_at is not None, timeout, what)
        return sorted(c.reached_at - started for c in self.clients)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        for ch in self.channels:
            await ch.close()
