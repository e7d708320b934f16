"""The ADS client's protocol state (pure: no sockets, no tasks): what to request, what to
ACK or NACK, and when a snapshot may be published.

    state.start_stream()          -> [request]            (re)connect: versions / initial_resource_versions
    state.receive(response)       -> Outcome(requests, publish)
    state.published(snap, errors) -> [request]            the deferred LDS ACK, or its NACK on bind errors
    state.warming_deadline() / warming_expired()          Envoy's initial_fetch_timeout

Rules (Envoy's): CDS and LDS are wildcard subscriptions; EDS, RDS and ADS-sourced SDS
names are exactly what the pending snapshot references (unreferenced ones are dropped
and unsubscribed). Every response compiles all-or-nothing through `Snapshot.with_update`;
a failure is NACKed (INVALID_ARGUMENT, the compiler's message; SotW keeps the last good
version_info) and the last good snapshot stays. Updates accumulate in `pending`, which is
published only once nothing it references over ADS is missing (CDS is applied together
with its EDS, LDS with its RDS), or when warming times out. LDS is ACKed only after the
data plane applied it: bind errors turn the ACK into a NACK.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2

from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL as CLUSTER
from isthmus.proxy.config.endpoints import ENDPOINT_TYPE_URL as ENDPOINT
from isthmus.proxy.config.errors import Invalid, Unsupported
from isthmus.proxy.config.listeners import LISTENER_TYPE_URL as LISTENER
from isthmus.proxy.config.routes import ROUTE_TYPE_URL as ROUTE
from isthmus.proxy.config.secrets import SECRET_TYPE_URL as SECRET
from isthmus.proxy.config.snapshot import KINDS, References, Snapshot

ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)  # Envoy's warming order
WILDCARD = frozenset({CLUSTER, LISTENER})
SHORT = {CLUSTER: "cds", ENDPOINT: "eds", LISTENER: "lds", ROUTE: "rds", SECRET: "sds"}
DEFAULT_WARMING = 15.0  # Envoy's default initial_fetch_timeout

Request = discovery_pb2.DiscoveryRequest | discovery_pb2.DeltaDiscoveryRequest
Response = discovery_pb2.DiscoveryResponse | discovery_pb2.DeltaDiscoveryResponse


@dataclass(frozen=True)
class Nack:
    version: str  # the version rejected
    nonce: str
    error: str
    at: float  # wall clock
    resource: str = ""  # the resource that failed, when known


@dataclass
class TypeState:
    type_url: str
    names: frozenset[str] = frozenset()  # named types: what the pending snapshot needs
    sent: frozenset[str] | None = None  # what this stream asked for (None: nothing yet)
    nonce: str = ""  # latest response nonce on this stream
    version: str = ""  # last ACKed version
    responses: int = 0
    acks: int = 0  # responses accepted (LDS: and bound)
    nacks: int = 0
    last_nack: Nack | None = None
    held: dict[str, str] = field(default_factory=dict)  # name → version it came with (delta: per resource)
    updated_at: dict[str, float] = field(default_factory=dict)  # name → wall clock of its last change

    @property
    def short(self) -> str:
        return SHORT[self.type_url]


@dataclass(frozen=True)
class Outcome:
    requests: list = field(default_factory=list)
    publish: Snapshot | None = None  # hand this to the data plane, then call `published`


def _status(error: str) -> status_pb2.Status:
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=error)


class AdsState:
    def __init__(self, node: base_pb2.Node, *, delta: bool = False, local_secret: Callable[[str], bool] = lambda n: False,
                 warming_timeout: float = DEFAULT_WARMING, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.node = node
        self.delta = delta
        self.local_secret = local_secret  # the agent serves this secret itself (default, ROOTCA, file-*)
        self.warming_timeout = warming_timeout
        self.clock, self.wall = clock, wall
        self.types = {t: TypeState(t) for t in ORDER}
        self.pending = Snapshot()
        self.active: Snapshot | None = None
        self.bind_errors: tuple[str, ...] = ()
        self._node_sent = False
        self._lds_ack: tuple[str, str] | None = None  # (version, nonce) waiting for the data plane
        self._dirty = False  # pending differs from active
        self._incomplete_since: float | None = None
        self._timed_out: set[tuple[str, str]] = set()  # (type, name) published without waiting longer

    # ---- requests ------------------------------------------------------------------
    def _node_once(self, req: Request) -> Request:
        if not self._node_sent:
            req.node.CopyFrom(self.node)
            self._node_sent = True
        return req

    def _initial(self, t: TypeState) -> Request:
        names = frozenset() if t.type_url in WILDCARD else t.names
        t.sent = names
        if self.delta:
            held = {n: v for n, v in t.held.items() if t.type_url in WILDCARD or n in names}
            return self._node_once(discovery_pb2.DeltaDiscoveryRequest(
                type_url=t.type_url, resource_names_subscribe=sorted(names), initial_resource_versions=held))
        return self._node_once(discovery_pb2.DiscoveryRequest(
            type_url=t.type_url, version_info=t.version, resource_names=sorted(names)))

    def _reply(self, t: TypeState, error: str | None = None) -> Request:
        """ACK (error None) or NACK of the latest response of `t`."""
        if self.delta:
            req = discovery_pb2.DeltaDiscoveryRequest(type_url=t.type_url, response_nonce=t.nonce)
        else:
            names = frozenset() if t.type_url in WILDCARD else t.names
            t.sent = names
            req = discovery_pb2.DiscoveryRequest(type_url=t.type_url, version_info=t.version,
                                                 response_nonce=t.nonce, resource_names=sorted(names))
        if error is not None:
            req.error_detail.CopyFrom(_status(error))
        return self._node_once(req)

    def start_stream(self) -> list[Request]:
        """Requests opening a new stream: CDS and LDS, and every named type we hold names for,
        carrying what we already have (SotW: version_info; delta: initial_resource_versions)."""
        self._node_sent = False
        self._lds_ack = None  # its nonce belonged to the old stream
        for t in self.types.values():
            t.nonce, t.sent = "", None
        return [self._initial(t) for t in (self.types[u] for u in ORDER) if t.type_url in WILDCARD or t.names]

    def _subscription_updates(self) -> list[Request]:
        out = []
        for t in (self.types[u] for u in ORDER if u not in WILDCARD):
            if t.sent is None:
                if t.names:
                    out.append(self._initial(t))
            elif t.names != t.sent:
                if self.delta:
                    out.append(self._node_once(discovery_pb2.DeltaDiscoveryRequest(
                        type_url=t.type_url, resource_names_subscribe=sorted(t.names - t.sent),
                        resource_names_unsubscribe=sorted(t.sent - t.names))))
                    t.sent = t.names
                else:
                    out.append(self._reply(t))  # same version and nonce, new names
        return out

    # ---- responses -----------------------------------------------------------------
    def receive(self, resp: Response) -> Outcome:
        t = self.types.get(resp.type_url)
        if t is None:
            return Outcome()  # never subscribed: nothing to say
        t.nonce = resp.nonce
        t.responses += 1
        version = resp.system_version_info if self.delta else resp.version_info
        try:
            changed, removed, versions = self._decode(t, resp)
            candidate = self.pending.with_update(t.type_url, changed, removed, version)
        except Unsupported as exc:
            return self._reject(t, version, str(exc), exc.resource_name)
        except Exception as exc:  # noqa: BLE001 - any compile failure is a NACK, never a crash
            return self._reject(t, version, f"{SHORT[t.type_url]} update: {type(exc).__name__}: {exc}")
        now = self.wall()
        t.held.update(versions)
        for name in changed:
            t.updated_at[name] = now
        for name in removed:
            t.held.pop(name, None)
            t.updated_at.pop(name, None)
        self._dirty |= bool(changed or removed)
        self.pending = self._prune(candidate)
        self._refresh_names()
        requests = []
        if t.type_url == LISTENER and (self._dirty or self.active is None or self.bind_errors):
            self._lds_ack = (version, resp.nonce)  # after the data plane bound the listeners
        else:
            t.version, t.last_nack = version, None
            t.acks += 1
            requests.append(self._reply(t))
        requests += self._subscription_updates()
        return Outcome(requests, self._maybe_publish())

    def _reject(self, t: TypeState, version: str, error: str, resource: str = "") -> Outcome:
        t.last_nack = Nack(version, t.nonce, error, self.wall(), resource)
        t.nacks += 1
        return Outcome([self._reply(t, error)])

    def _decode(self, t: TypeState, resp: Response) -> tuple[dict[str, Message], set[str], dict[str, str]]:
        """Changed resources by name, removed names, and the version of every resource
        received; resources of named types nobody subscribed to are ignored."""
        kind = KINDS[t.type_url]
        have: Mapping[str, Message] = self.pending.resources.get(t.type_url, {})
        received: dict[str, Message] = {}
        versions: dict[str, str] = {}
        if self.delta:
            items = [(r.name, r.resource, r.version) for r in resp.resources if r.HasField("resource")]
        else:
            items = [(None, a, resp.version_info) for a in resp.resources]
        for name, packed, res_version in items:
            if packed.type_url != t.type_url:
                raise Unsupported(t.type_url, name or "", "", f"response carries a {packed.type_url} resource")
            msg = kind.message()
            packed.Unpack(msg)
            name = name if name is not None else kind.name_of(msg)
            if name in received:
                raise Invalid(t.type_url, name, "", "resource appears twice in one response")
            received[name] = msg
            versions[name] = res_version
        if t.type_url not in WILDCARD:
            received = {n: m for n, m in received.items() if n in t.names}
            versions = {n: v for n, v in versions.items() if n in t.names}
        if self.delta:
            removed = {n for n in resp.removed_resources if n in have}
        elif t.type_url in WILDCARD:
            removed = set(have) - set(received)
        else:
            removed = set()  # SotW named types may answer with a subset
        changed = {n: m for n, m in received.items() if have.get(n) != m}
        return changed, removed, versions

    def _wanted(self, snap: Snapshot) -> dict[str, frozenset[str]]:
        refs = snap.references()
        return {
            ENDPOINT: frozenset(refs.endpoints),
            ROUTE: frozenset(refs.routes),
            SECRET: frozenset(n for n, src in refs.secrets.items() if src is not None and src.kind == "ads"),
        }

    def _prune(self, snap: Snapshot) -> Snapshot:
        """Drop EDS/RDS/SDS resources nothing references any more (Envoy forgets them too)."""
        have = {ENDPOINT: snap.endpoints, ROUTE: snap.routes, SECRET: snap.secrets}
        for type_url, wanted in self._wanted(snap).items():
            gone = set(have[type_url]) - wanted
            if gone:
                snap = snap.with_update(type_url, {}, gone, snap.versions.get(type_url, ""))
                t = self.types[type_url]
                for name in gone:
                    t.held.pop(name, None)
                    t.updated_at.pop(name, None)
                self._dirty = True
        return snap

    def _refresh_names(self) -> None:
        for type_url, names in self._wanted(self.pending).items():
            self.types[type_url].names = names
        self._timed_out = {(u, n) for u, n in self._timed_out if n in self.types[u].names and n not in
                           self.pending.resources.get(u, {})}

    # ---- warming and publishing ------------------------------------------------------
    def missing(self, include_local: bool = True) -> References:
        """What the pending snapshot references and does not have. ADS names that timed out
        warming are not waited for again; `include_local` counts secrets the agent serves
        itself but does not have (readiness), which never hold back a publish."""
        m = self.pending.missing()
        routes = {n: s for n, s in m.routes.items() if (ROUTE, n) not in self._timed_out}
        endpoints = {n: s for n, s in m.endpoints.items() if (ENDPOINT, n) not in self._timed_out}
        secrets = {}
        for n, s in m.secrets.items():
            if s is not None and s.kind == "ads":
                if (SECRET, n) not in self._timed_out:
                    secrets[n] = s
            elif include_local and not self.local_secret(n):
                secrets[n] = s
        return References(routes, endpoints, secrets)

    def _maybe_publish(self) -> Snapshot | None:
        if not (self._dirty or self._lds_ack is not None or self.active is None):
            return None
        if self.active is None and not all(self.types[u].responses for u in WILDCARD):
            return None  # the first snapshot waits for both CDS and LDS
        if self.missing(include_local=False).empty:
            self._incomplete_since = None
            return self.pending
        if self._incomplete_since is None:
            self._incomplete_since = self.clock()
        return None

    def warming_deadline(self) -> float | None:
        """Monotonic time at which to publish anyway (None: nothing is warming)."""
        if self._incomplete_since is None:
            return None
        m = self.missing(include_local=False)
        timeouts = [s.initial_fetch_timeout for refs in (m.routes, m.endpoints, m.secrets) for s in refs.values()
                    if s is not None and s.initial_fetch_timeout]
        return self._incomplete_since + min([self.warming_timeout, *timeouts])

    def warming_expired(self) -> Outcome:
        """Stop waiting for what is missing (Envoy: the warming cluster or listener is
        initialized without it) and publish the pending snapshot."""
        m = self.missing(include_local=False)
        self._timed_out |= {(ROUTE, n) for n in m.routes} | {(ENDPOINT, n) for n in m.endpoints} | \
            {(SECRET, n) for n in m.secrets}
        self._incomplete_since = None
        return Outcome([], self.pending)

    def published(self, snap: Snapshot, bind_errors: list[str] | tuple[str, ...] = ()) -> list[Request]:
        """The data plane now serves `snap`; ACK (or NACK with the bind errors) a waiting LDS."""
        self.active = snap
        if snap is self.pending:
            self._dirty = False  # (pending moves on without content changes: versions only)
        self.bind_errors = tuple(bind_errors)
        if self._lds_ack is None:
            return []
        version, nonce = self._lds_ack
        self._lds_ack = None
        t = self.types[LISTENER]
        if nonce != t.nonce:
            return []  # superseded by a newer LDS response
        if bind_errors:
            error = "; ".join(bind_errors)
            t.last_nack = Nack(version, nonce, error, self.wall())
            t.nacks += 1
            return [self._reply(t, error)]
        t.version, t.last_nack = version, None
        t.acks += 1
        return [self._reply(t)]

    @property
    def complete(self) -> bool:
        """CDS and LDS were accepted, the data plane serves everything received (pending
        differs from active in versions at most), and nothing referenced is missing or
        was given up on."""
        return all(self.types[u].acks for u in WILDCARD) and self.active is not None and not self._dirty and \
            self._lds_ack is None and self.missing().empty and not self._timed_out
