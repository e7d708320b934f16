"""One ADS stream's state, and the xDS rules for reading a client's requests (pure).

A `Connection` holds, per type URL, a `Watched`: what the client subscribed to,
what we last sent (nonce, version), what it last ACKed, its last NACK, and for
delta streams the version of every resource it holds. `classify_sotw` and
`apply_delta` implement the protocol's nonce/ACK/NACK/subscription rules; only the
stream task touches a connection, so there are no locks.
"""
from __future__ import annotations

import asyncio
import enum
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from isthmus.pilot.xds.typeurls import WILDCARD, WILDCARD_TYPES, order_key


class Verdict(str, enum.Enum):
    INITIAL = "initial"  # first request for a type on this stream: answer it
    ACK = "ack"  # latest response accepted, nothing new asked for
    NACK = "nack"  # latest response rejected: record, do not resend
    STALE = "stale"  # nonce of an older response: ignore
    CHANGED = "changed"  # SotW: an ACK that also changes the subscription: answer it
    UPDATE = "update"  # delta: a subscription change that acknowledges nothing


@dataclass(frozen=True)
class Nack:
    version: str  # the version the client keeps (its last good one)
    nonce: str  # the response it rejected
    rejected_version: str
    message: str
    at: float  # wall-clock time


@dataclass
class Watched:
    type_url: str
    names: frozenset[str] = frozenset()
    wildcard: bool = False
    nonce_sent: str = ""
    version_sent: str = ""
    sent_at: float = 0.0
    nonce_acked: str = ""
    version_acked: str = ""
    acked_at: float = 0.0
    last_nack: Nack | None = None
    known: dict[str, str] = field(default_factory=dict)  # delta: resource name -> version the client holds

    @property
    def subscription(self) -> frozenset[str] | None:
        """None for "everything" (wildcard), else the subscribed names."""
        return None if self.wildcard else self.names

    def record_sent(self, nonce: str, version: str) -> None:
        self.nonce_sent, self.version_sent, self.sent_at = nonce, version, time.time()

    def record_ack(self, nonce: str, version: str) -> None:
        self.nonce_acked, self.version_acked, self.acked_at = nonce, version, time.time()

    def record_nack(self, nonce: str, kept_version: str, message: str) -> None:
        self.last_nack = Nack(kept_version, nonce, self.version_sent, message, time.time())


def sotw_subscription(type_url: str, names: Any) -> tuple[bool, frozenset[str]]:
    """(wildcard, names) for a state-of-the-world request: CDS/LDS with no names or "*"
    mean everything; EDS/RDS list what they want (an empty list: nothing)."""
    names = frozenset(names)
    wildcard = type_url in WILDCARD_TYPES and (not names or WILDCARD in names)
    return wildcard, names - {WILDCARD}


def classify_sotw(watched: Watched | None, req: discovery_pb2.DiscoveryRequest) -> Verdict:
    """Envoy's SotW rules (and Istio's shouldRespond)."""
    if watched is None or not req.response_nonce:
        # First request for the type, or a client re-sending after a reconnect.
        return Verdict.INITIAL
    if req.response_nonce != watched.nonce_sent:
        return Verdict.STALE
    if req.HasField("error_detail"):
        return Verdict.NACK
    wildcard, names = sotw_subscription(req.type_url, req.resource_names)
    if wildcard != watched.wildcard or names != watched.names:
        return Verdict.CHANGED
    return Verdict.ACK


@dataclass(frozen=True)
class DeltaOutcome:
    verdict: Verdict
    added: frozenset[str] = frozenset()  # names newly subscribed: answer these whatever the verdict
    wildcard_added: bool = False  # the client now wants everything


def apply_delta(watched: Watched | None, req: discovery_pb2.DeltaDiscoveryRequest) -> tuple[Watched, DeltaOutcome]:
    """Fold a delta request into the type's state. Subscription changes always apply
    (they are deltas: dropping one would desync the client); ACK/NACK only count for
    the latest nonce. Unsubscribed names are forgotten so a re-subscribe resends them."""
    subscribe = frozenset(req.resource_names_subscribe)
    unsubscribe = frozenset(req.resource_names_unsubscribe)
    if watched is None:
        wildcard = WILDCARD in subscribe or (req.type_url in WILDCARD_TYPES and not subscribe)
        w = Watched(req.type_url, names=subscribe - {WILDCARD}, wildcard=wildcard)
        w.known = dict(req.initial_resource_versions)
        return w, DeltaOutcome(Verdict.INITIAL, w.names, wildcard)
    was_wildcard, before = watched.wildcard, watched.names
    if WILDCARD in subscribe:
        watched.wildcard = True
    if WILDCARD in unsubscribe:
        watched.wildcard = False
    watched.names = (watched.names | subscribe) - unsubscribe - {WILDCARD}
    for name in unsubscribe:
        watched.known.pop(name, None)
    added = watched.names - before
    wildcard_added = watched.wildcard and not was_wildcard
    if not req.response_nonce:
        verdict = Verdict.UPDATE
    elif req.response_nonce != watched.nonce_sent:
        verdict = Verdict.STALE
    else:
        verdict = Verdict.NACK if req.HasField("error_detail") else Verdict.ACK
    return watched, DeltaOutcome(verdict, added, wildcard_added)


@dataclass
class PushEvent:
    """A push handed to a connection's stream task; `done` resolves once it is sent."""

    request: Any  # the host's push request (PushRequest: `.start` feeds convergence)
    context: Any  # the host's snapshot to generate from (PushContext)
    done: asyncio.Future


_ids = itertools.count(1)


class Connection:
    """State of one ADS stream (SotW or delta); owned by its stream task."""

    def __init__(self, node: base_pb2.Node, proxy: Any, peer: str, delta: bool, identity: str | None = None):
        self.id = f"{node.id}-{next(_ids)}"
        self.node = node
        self.proxy = proxy
        self.peer = peer
        self.identity = identity
        self.delta = delta
        self.connected_at = time.time()
        self.watched: dict[str, Watched] = {}
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.closed = False

    @property
    def proxy_id(self) -> str:
        return self.node.id

    def watched_in_order(self) -> list[Watched]:
        return [self.watched[t] for t in sorted(self.watched, key=order_key)]

    def __repr__(self) -> str:
        kind = "delta" if self.delta else "sotw"
        return f"<Connection {self.id} {kind} types={[w.type_url.rsplit('.', 1)[-1] for w in self.watched_in_order()]}>"
