"""The generic ADS stream loop: SotW and delta, nonces, versions, ACK/NACK.

`AdsServer` serves envoy.service.discovery.v3.AggregatedDiscoveryService and knows
nothing of Istio config: an `XdsHost` admits a node, generates resources for
(connection, type, names, snapshot) and plans pushes. Each stream runs one task
that answers requests and pushes in arrival order; a reader task feeds its inbox.
Rules: every response gets a fresh nonce and the snapshot's version; a NACK is
recorded and not answered (the next push comes with the next change); stale nonces
are ignored; a changed subscription is answered at once; named types (EDS, RDS)
are answered for exactly the subscribed names, even when that list is empty of
resources.
"""
from __future__ import annotations

import abc
import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Protocol, Sequence

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from isthmus.pilot.xds.connection import Connection, PushEvent, Verdict, Watched, apply_delta, classify_sotw, sotw_subscription
from isthmus.pilot.xds.metrics import XdsMetrics
from isthmus.pilot.xds.tls import peer_identity, server_credentials
from isthmus.pilot.xds.typeurls import WILDCARD_TYPES, resource_name, resource_version, short_name
from isthmus.shared.logging import get_logger

log = get_logger(__name__)


class Refused(Exception):
    """The host will not serve this stream; `code` is the gRPC status sent back."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class XdsHost(Protocol):
    def admit(self, node: base_pb2.Node, identity: str | None) -> Any:
        """The proxy value for this node (raise Refused)."""

    def connected(self, con: Connection) -> None: ...

    def disconnected(self, con: Connection) -> None: ...

    def current_context(self) -> Any:
        """The snapshot requests are answered from."""

    def version(self, context: Any) -> str: ...

    def generate(self, con: Connection, type_url: str, names: frozenset[str] | None, context: Any,
                 request: Any | None) -> Sequence[Message] | None:
        """Resources of `type_url` (None names: all of them); None when the type has no generator."""

    def push_plan(self, con: Connection, event: PushEvent) -> list[tuple[str, frozenset[str] | None]]:
        """Ordered (type URL, only these names or None for all subscribed) to push."""


@dataclass(frozen=True)
class Out:
    response: Message
    type_url: str
    started: float  # clock() when generation began (push time metric)


def _nonce() -> str:
    return uuid.uuid4().hex


# Packed (serialized) resources by message identity: generators share one message
# between equivalent proxies within a push, so each is serialized once, not per proxy.
# The entry holds the message, so its identity cannot be reused while cached.
_PACKED: dict[int, tuple[Message, any_pb2.Any]] = {}
_PACKED_MAX = 200_000


def _pack(msg: Message) -> any_pb2.Any:
    hit = _PACKED.get(id(msg))
    if hit is not None and hit[0] is msg:
        return hit[1]
    a = any_pb2.Any()
    a.Pack(msg)
    if len(_PACKED) >= _PACKED_MAX:
        _PACKED.clear()
    _PACKED[id(msg)] = (msg, a)
    return a


class _Protocol(abc.ABC):
    """What SotW and delta share: generation with error accounting and push plans."""

    delta = False

    def __init__(self, host: XdsHost, metrics: XdsMetrics, clock: Callable[[], float]):
        self.host, self.metrics, self.clock = host, metrics, clock

    def _generate(self, con: Connection, type_url: str, names: frozenset[str] | None, context: Any,
                  request: Any | None) -> Sequence[Message] | None:
        try:
            resources = self.host.generate(con, type_url, names, context, request)
        except Exception:
            self.metrics.internal_errors.labels(short_name(type_url)).inc()
            log.exception("generator failed", proxy=con.proxy_id, type=short_name(type_url))
            return None
        if resources is None:
            log.warning("no generator for requested type", proxy=con.proxy_id, type_url=type_url)
        return resources

    def on_push(self, con: Connection, event: PushEvent) -> list[Out]:
        out: list[Out] = []
        for type_url, only in self.host.push_plan(con, event):
            watched = con.watched.get(type_url)
            if watched is not None:
                out.extend(self.respond(con, watched, event.context, event.request, only))
        return out

    @abc.abstractmethod
    def respond(self, con: Connection, w: Watched, context: Any, request: Any | None,
                only: frozenset[str] | None = None, always: bool = False) -> list[Out]:
        """Responses for one watched type (SotW: full state; delta: changes)."""

    @abc.abstractmethod
    def on_request(self, con: Connection, req: Message) -> list[Out]:
        """Handle one request from the proxy (ACK, NACK, new subscription)."""


class SotwProtocol(_Protocol):
    def on_request(self, con: Connection, req: discovery_pb2.DiscoveryRequest) -> list[Out]:
        w = con.watched.get(req.type_url)
        verdict = classify_sotw(w, req)
        kind = short_name(req.type_url)
        if verdict is Verdict.STALE:
            log.debug("stale nonce ignored", proxy=con.proxy_id, type=kind, nonce=req.response_nonce)
            return []
        wildcard, names = sotw_subscription(req.type_url, req.resource_names)
        if verdict is Verdict.INITIAL:
            w = w or Watched(req.type_url)
            w.wildcard, w.names = wildcard, names
            con.watched[req.type_url] = w
            return self.respond(con, w, self.host.current_context(), None)
        assert w is not None
        changed = (wildcard, names) != (w.wildcard, w.names)
        w.wildcard, w.names = wildcard, names
        if verdict is Verdict.NACK:
            w.record_nack(req.response_nonce, req.version_info, req.error_detail.message)
            self.metrics.rejects.labels(kind).inc()
            log.warning("proxy rejected config (NACK)", proxy=con.proxy_id, type=kind, version=w.version_sent,
                        error=req.error_detail.message)
            # Keep its last good version; resend only if it now asks for other names.
            return self.respond(con, w, self.host.current_context(), None) if changed else []
        w.record_ack(req.response_nonce, req.version_info)
        return self.respond(con, w, self.host.current_context(), None) if changed else []

    def respond(self, con, w, context, request, only=None, always=False) -> list[Out]:
        names = w.subscription
        if names is not None and not names:
            return []  # a named type with nothing subscribed
        if only is not None and w.type_url not in WILDCARD_TYPES:
            # EDS/RDS responses may carry a subset; CDS/LDS always carry the whole set.
            names = only if names is None else names & only
            if not names:
                return []
        started = self.clock()
        resources = self._generate(con, w.type_url, names, context, request)
        if resources is None:
            return []
        if names is not None:
            resources = [r for r in resources if resource_name(r) in names]
        nonce, version = _nonce(), self.host.version(context)
        resp = discovery_pb2.DiscoveryResponse(version_info=version, type_url=w.type_url, nonce=nonce,
                                               resources=[_pack(r) for r in resources])
        w.record_sent(nonce, version)
        return [Out(resp, w.type_url, started)]


class DeltaProtocol(_Protocol):
    delta = True

    def on_request(self, con: Connection, req: discovery_pb2.DeltaDiscoveryRequest) -> list[Out]:
        w, outcome = apply_delta(con.watched.get(req.type_url), req)
        con.watched[req.type_url] = w
        kind = short_name(req.type_url)
        context = self.host.current_context()
        if outcome.verdict is Verdict.NACK:
            w.record_nack(req.response_nonce, w.version_acked, req.error_detail.message)
            self.metrics.rejects.labels(kind).inc()
            log.warning("proxy rejected config (NACK)", proxy=con.proxy_id, type=kind, version=w.version_sent,
                        error=req.error_detail.message)
        elif outcome.verdict is Verdict.ACK:
            w.record_ack(req.response_nonce, w.version_sent)
        if outcome.verdict is Verdict.INITIAL or outcome.wildcard_added:
            return self.respond(con, w, context, None, always=True)
        if outcome.added:
            return self.respond(con, w, context, None, only=outcome.added, always=True)
        return []

    def respond(self, con, w, context, request, only=None, always=False) -> list[Out]:
        subs = w.subscription
        wanted = subs if only is None else (only if subs is None else subs & only)
        if wanted is not None and not wanted and not always:
            return []
        started = self.clock()
        named = w.type_url not in WILDCARD_TYPES
        resources = self._generate(con, w.type_url, wanted if named else None, context, request)
        if resources is None:
            return []
        by_name = {resource_name(r): r for r in resources}
        if wanted is not None:
            by_name = {n: r for n, r in by_name.items() if n in wanted}
        changed = []
        for name, res in sorted(by_name.items()):
            v = resource_version(res)
            if w.known.get(name) != v:
                changed.append(discovery_pb2.Resource(name=name, version=v, resource=_pack(res)))
        removed = sorted(n for n in w.known if n not in by_name and (wanted is None or n in wanted))
        if not changed and not removed and not always:
            return []
        nonce, version = _nonce(), self.host.version(context)
        resp = discovery_pb2.DeltaDiscoveryResponse(system_version_info=version, type_url=w.type_url, nonce=nonce,
                                                    resources=changed, removed_resources=removed)
        for r in changed:
            w.known[r.name] = r.version
        for n in removed:
            w.known.pop(n, None)
        w.record_sent(nonce, version)
        return [Out(resp, w.type_url, started)]


class AdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, host: XdsHost, metrics: XdsMetrics | None = None, clock: Callable[[], float] = time.monotonic):
        self.host = host
        self.metrics = metrics or XdsMetrics()
        self.clock = clock
        self._sotw = SotwProtocol(host, self.metrics, clock)
        self._delta = DeltaProtocol(host, self.metrics, clock)

    async def StreamAggregatedResources(self, request_iterator, context):  # noqa: N802 (gRPC name)
        async for resp in self._serve(request_iterator, context, self._sotw):
            yield resp

    async def DeltaAggregatedResources(self, request_iterator, context):  # noqa: N802
        async for resp in self._serve(request_iterator, context, self._delta):
            yield resp

    async def _serve(self, requests: AsyncIterator, context: grpc.aio.ServicerContext,
                     proto: _Protocol) -> AsyncIterator[Message]:
        try:
            identity = peer_identity(context)
        except PermissionError as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        try:
            first = await requests.__anext__()
        except StopAsyncIteration:
            return
        try:
            proxy = self.host.admit(first.node, identity)
        except Refused as exc:
            log.warning("xDS stream refused", node=first.node.id, peer=context.peer(), reason=exc.message)
            await context.abort(exc.code, exc.message)
        con = Connection(first.node, proxy, context.peer(), proto.delta, identity)
        reader = asyncio.get_running_loop().create_task(self._read(requests, con))
        self.host.connected(con)
        log.info("proxy connected", proxy=con.proxy_id, connection=con.id, delta=proto.delta, identity=identity or "")
        try:
            for out in proto.on_request(con, first):
                yield out.response
                self._sent(out)
            while True:
                kind, item = await con.inbox.get()
                if kind == "eof":
                    break
                if kind == "request":
                    for out in proto.on_request(con, item):
                        yield out.response
                        self._sent(out)
                    continue
                try:  # a push
                    outs = proto.on_push(con, item)
                    for out in outs:
                        yield out.response
                        self._sent(out)
                    start = getattr(item.request, "start", 0.0)
                    if outs and start:
                        self.metrics.convergence.observe(max(0.0, self.clock() - start))
                finally:
                    if not item.done.done():
                        item.done.set_result(None)
        finally:
            con.closed = True
            reader.cancel()
            while not con.inbox.empty():
                kind, item = con.inbox.get_nowait()
                if kind == "push" and not item.done.done():
                    item.done.set_result(None)
            self.host.disconnected(con)
            log.info("proxy disconnected", proxy=con.proxy_id, connection=con.id)

    def _sent(self, out: Out) -> None:
        kind = short_name(out.type_url)
        self.metrics.pushes.labels(kind).inc()
        self.metrics.push_time.labels(kind).observe(max(0.0, self.clock() - out.started))

    @staticmethod
    async def _read(requests: AsyncIterator, con: Connection) -> None:
        try:
            async for req in requests:
                con.inbox.put_nowait(("request", req))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-read
            log.debug("xDS stream read ended", proxy=con.proxy_id, error=str(exc))
        con.inbox.put_nowait(("eof", None))


def deliver(con: Connection, event: PushEvent) -> bool:
    """Hand a push to a connection's stream task; False when the stream is gone."""
    if con.closed:
        return False
    con.inbox.put_nowait(("push", event))
    return True


@dataclass(frozen=True)
class AdsPorts:
    plaintext: int | None  # bound port (0 asked → the ephemeral one chosen)
    mtls: int | None


def add_ads_ports(server: grpc.aio.Server, ads: AdsServer, *, plaintext_address: str | None = None,
                  mtls_address: str | None = None, cert_source: Any = None) -> AdsPorts:
    """Register the ADS service on `server` and bind its ports: plaintext (dev, loopback;
    Istio's 15010) and/or mTLS (15012; `cert_source() -> (chain_pem, key_pem, roots_pem)`)."""
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(ads, server)
    plain = server.add_insecure_port(plaintext_address) if plaintext_address else None
    secure = None
    if mtls_address:
        if cert_source is None:
            raise ValueError("xDS mTLS port needs a cert_source returning (cert_chain_pem, key_pem, roots_pem)")
        secure = server.add_secure_port(mtls_address, server_credentials(cert_source))
    return AdsPorts(plain, secure)
