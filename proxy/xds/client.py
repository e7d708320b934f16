"""The proxy's ADS client: one gRPC stream to pilot, state-of-the-world or delta.

    client = XdsClient(address, node, on_snapshot, delta=False, tls=XdsTls(certs))
    await client.start() ... client.status() ... await client.stop()

`on_snapshot(snapshot) -> bind errors` is awaited for every snapshot the protocol state
(`state.AdsState`) decides to publish; the errors NACK the LDS update that caused them.
While pilot is away the client reconnects with jittered exponential backoff and the last
snapshot keeps serving; a new stream re-sends what it holds (SotW versions, delta
initial_resource_versions). Every attempt opens a fresh channel, so a renewed workload
certificate is used on the next connection. The stream runs on the in-house gRPC client
(shared/service/grpc_client.py), which keeps grpcio out of the sidecar.

mTLS: the client presents the workload certificate and trusts the mesh roots. Pilot's
certificate carries the DNS SAN `istiod.istio-system.svc`, which citadel issues only to
the istiod identity (`citadel.pki.policy.allowed_dns_names`), and the TLS handshake
checks that name, so the hostname check is the identity check — as with Istio's proxies.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from isthmus.proxy.config.snapshot import Snapshot
from isthmus.proxy.xds.state import DEFAULT_WARMING, ORDER, SHORT, AdsState, Outcome
from isthmus.shared.logging import get_logger
from isthmus.shared.service.grpc_client import Channel, describe, mtls_context

log = get_logger("proxy.xds")

PILOT_SERVER_NAME = "istiod.istio-system.svc"
MAX_MESSAGE = 64 * 1024 * 1024  # pilot may send up to this much (its max send size)
ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
OnSnapshot = Callable[[Snapshot], Awaitable[Sequence[str]]]
CertSource = Callable[[], "tuple[bytes, bytes, bytes] | None"]  # (cert_chain_pem, key_pem, roots_pem)


@dataclass(frozen=True)
class XdsTls:
    certs: CertSource  # read at every connection attempt
    server_name: str = PILOT_SERVER_NAME


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5  # each delay is scaled by a random factor in [1 - jitter, 1]

    def delay(self, failures: int, rng: random.Random) -> float:
        base = min(self.maximum, self.initial * 2 ** max(0, failures - 1))
        return base * (1 - self.jitter * rng.random())


@dataclass(frozen=True)
class TypeStatus:
    type: str  # cds, eds, lds, rds, sds
    type_url: str
    version: str  # last ACKed
    nonce: str
    subscribed: tuple[str, ...]  # named types; () for the wildcard ones
    resources: int
    responses: int
    nack_version: str = ""
    nack_error: str = ""
    nack_at: float = 0.0


@dataclass(frozen=True)
class XdsStatus:
    address: str
    delta: bool
    connected: bool
    connects: int
    last_error: str
    complete: bool
    types: tuple[TypeStatus, ...]
    missing: dict[str, list[str]] = field(default_factory=dict)  # eds/rds/sds → names
    bind_errors: tuple[str, ...] = ()


class StreamEnded(ConnectionError):
    pass


class XdsClient:
    def __init__(self, address: str, node: base_pb2.Node, on_snapshot: OnSnapshot, *, delta: bool = False,
                 tls: XdsTls | None = None, local_secret: Callable[[str], bool] = lambda n: False,
                 backoff: Backoff = Backoff(), warming_timeout: float = DEFAULT_WARMING,
                 rng: random.Random | None = None):
        self.address = address
        self.on_snapshot = on_snapshot
        self.tls = tls
        self.backoff = backoff
        self.rng = rng or random.Random()
        self.state = AdsState(node, delta=delta, local_secret=local_secret, warming_timeout=warming_timeout)
        self.connected = False
        self.connects = 0  # streams that got at least one response
        self.last_error = ""
        self._failures = 0
        self._task: asyncio.Task | None = None
        self._changed = asyncio.Event()

    # ---- what the engine and admin read ------------------------------------------
    @property
    def snapshot(self) -> Snapshot | None:
        """The snapshot the data plane serves (None before the first publish)."""
        return self.state.active

    @property
    def complete(self) -> bool:
        return self.state.complete

    def status(self) -> XdsStatus:
        types = []
        for type_url in ORDER:
            t = self.state.types[type_url]
            nack = t.last_nack
            types.append(TypeStatus(
                type=SHORT[type_url], type_url=type_url, version=t.version, nonce=t.nonce,
                subscribed=tuple(sorted(t.names)), resources=len(self.state.pending.resources.get(type_url, {})),
                responses=t.responses, nack_version=nack.version if nack else "", nack_error=nack.error if nack else "",
                nack_at=nack.at if nack else 0.0))
        m = self.state.missing()
        missing = {k: sorted(v) for k, v in (("eds", m.endpoints), ("rds", m.routes), ("sds", m.secrets)) if v}
        return XdsStatus(self.address, self.state.delta, self.connected, self.connects, self.last_error,
                         self.state.complete, tuple(types), missing, self.state.bind_errors)

    async def wait_for(self, predicate: Callable[["XdsClient"], bool], timeout: float) -> None:
        """Wait (bounded) until `predicate(self)` holds; re-checked after every response."""
        async def _wait() -> None:
            while not predicate(self):
                event = self._changed
                await event.wait()
        await asyncio.wait_for(_wait(), timeout)

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    # ---- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"xds {self.address}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.connected = False

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - pilot away, refused, or a broken stream: retry
                self.last_error = describe(exc)
            self.connected = False
            self._notify()
            self._failures += 1
            delay = self.backoff.delay(self._failures, self.rng)
            log.warning("xDS stream to pilot ended; keeping the last configuration and reconnecting",
                        pilot=self.address, error=self.last_error, retry_in=round(delay, 3), failures=self._failures)
            await asyncio.sleep(delay)

    def _channel(self) -> Channel:
        if self.tls is None:
            return Channel(self.address, max_receive=MAX_MESSAGE)
        material = self.tls.certs()
        if material is None:
            raise ConnectionError("no workload certificate yet for mTLS to pilot")
        chain, key, roots = material
        return Channel(self.address, tls=mtls_context(chain, key, roots), server_name=self.tls.server_name,
                       max_receive=MAX_MESSAGE)

    async def _session(self) -> None:
        channel = self._channel()
        try:
            if self.state.delta:
                call = await channel.stream(ADS + "DeltaAggregatedResources", discovery_pb2.DeltaDiscoveryResponse)
            else:
                call = await channel.stream(ADS + "StreamAggregatedResources", discovery_pb2.DiscoveryResponse)
        except BaseException:
            await channel.close()
            raise
        inbox: asyncio.Queue = asyncio.Queue()
        reader = asyncio.get_running_loop().create_task(self._read(call, inbox))
        try:
            for req in self.state.start_stream():
                await call.write(req)
            while True:
                deadline = self.state.warming_deadline()
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    item = await asyncio.wait_for(inbox.get(), timeout)
                except asyncio.TimeoutError:
                    log.warning("warming timed out; publishing without what is still missing",
                                missing=self.status().missing)
                    await self._handle(call, self.state.warming_expired())
                    continue
                if isinstance(item, BaseException):
                    raise item
                if not self.connected:
                    self.connected, self._failures, self.last_error = True, 0, ""
                    self.connects += 1
                    log.info("xDS stream to pilot established", pilot=self.address, delta=self.state.delta,
                             reconnect=self.connects > 1)
                await self._handle(call, self.state.receive(item))
                self._notify()
        finally:
            self.connected = False
            reader.cancel()
            call.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await channel.close()

    @staticmethod
    async def _read(call, inbox: asyncio.Queue) -> None:
        # Reads run in their own task: cancelling a pending read would cancel the RPC.
        try:
            while True:
                resp = await call.read()
                if resp is None:
                    inbox.put_nowait(StreamEnded("pilot closed the xDS stream"))
                    return
                inbox.put_nowait(resp)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the session, which retries
            inbox.put_nowait(exc)

    async def _handle(self, call, outcome: Outcome) -> None:
        for req in outcome.requests:
            self._log_request(req)
            await call.write(req)
        if outcome.publish is None:
            return
        try:
            errors = list(await self.on_snapshot(outcome.publish) or ())
        except Exception as exc:  # noqa: BLE001 - a data-plane failure NACKs, it does not kill the stream
            log.exception("applying the snapshot failed")
            errors = [f"applying the configuration failed: {type(exc).__name__}: {exc}"]
        if errors:
            log.error("listeners failed to bind", errors=errors)
        for req in self.state.published(outcome.publish, errors):
            self._log_request(req)
            await call.write(req)
        self._notify()

    @staticmethod
    def _log_request(req) -> None:
        if req.HasField("error_detail"):
            log.warning("rejecting configuration from pilot (NACK)", type=SHORT.get(req.type_url, req.type_url),
                        nonce=req.response_nonce, error=req.error_detail.message)
