"""Connection-pool bookkeeping for one upstream host, pure: events in, actions out.

Contract: `ConnectionPool.handle(event, now)` updates the pool's books and returns the
actions the runtime must carry out (`OpenConnection`, `Assign`, `CloseConnection`,
`FailRequest`); it does no I/O and reads no clock. It follows Envoy's pool: a request
goes to a ready connection with spare streams (most recently used first), else waits
in a FIFO queue bounded by the max_pending_requests breaker (overflow → `FailRequest`
OVERFLOW, 503 UO); new connections open while queued requests exceed the stream
capacity of connections still connecting, within max_connections (a pool with no
connection may always open one). Streams per connection: 1 for HTTP/1.1,
min(ours, peer's) SETTINGS_MAX_CONCURRENT_STREAMS for HTTP/2. A connection is drained
after max_requests_per_connection streams, on GOAWAY, or on `DrainAll` (host turned
unhealthy); a connect failure fails every queued request (503 UF), as Envoy's pool
purges its pending streams. `IdleTick` closes connections idle for `idle_timeout`.
Per request, the runtime calls the same books through two fast paths that build no
event or action objects: `assign_ready(request)` (a ready connection takes it, or 0:
use `handle`) and `request_finished(request, close, now)`.

Idle timeout: Envoy defaults to 1 h; we default to 60 s. An upstream server closes
keep-alive connections it considers idle (nginx 75 s; many app servers 5-60 s), and a
request written onto a connection the server is closing at that moment fails with a
reset. Closing first, below common server timeouts, makes that race rare; set it
below your server's keep-alive timeout when that is shorter (e.g. 4 s for a 5 s one).
"""
from __future__ import annotations

import dataclasses
import enum
from collections.abc import Hashable

from .circuit import Resource, ResourceManager
from .endpoints import Host
from .pool_events import (
    Action, Assign, CloseConnection, ConnectFailed, ConnectionClosed, ConnectionReady, DrainAll, Event,
    FailRequest, FailureReason, GoAway, IdleTick, OpenConnection, PeerSettings, RequestArrived,
    RequestCancelled, RequestFinished,
)

__all__ = [
    "PoolProtocol", "PoolSettings", "FailureReason", "ConnState",
    "RequestArrived", "RequestCancelled", "RequestFinished", "ConnectionReady", "ConnectFailed",
    "ConnectionClosed", "GoAway", "PeerSettings", "IdleTick", "DrainAll", "Event",
    "OpenConnection", "Assign", "CloseConnection", "FailRequest", "Action",
    "ConnectionInfo", "ConnectionPool",
]


class PoolProtocol(enum.Enum):
    HTTP1 = "http/1.1"
    HTTP2 = "h2"


@dataclasses.dataclass(frozen=True, slots=True)
class PoolSettings:
    protocol: PoolProtocol = PoolProtocol.HTTP1
    max_concurrent_streams: int = 2**31 - 1  # HTTP/2; Envoy's default
    max_requests_per_connection: int = 0  # 0: unlimited
    idle_timeout: float | None = 60.0  # seconds; None or 0: never

    def __post_init__(self) -> None:
        if self.max_concurrent_streams < 1:
            raise ValueError(f"max_concurrent_streams must be >= 1 (got {self.max_concurrent_streams})")
        if self.max_requests_per_connection < 0:
            raise ValueError(f"max_requests_per_connection must be >= 0 (got {self.max_requests_per_connection})")

    @property
    def stream_limit(self) -> int:
        return 1 if self.protocol is PoolProtocol.HTTP1 else self.max_concurrent_streams


class ConnState(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"  # accepts new streams while below its limits
    DRAINING = "draining"  # no new streams; closed when the last one ends


# Module constants: looking a member up on an Enum class costs ~10x a global read.
_CONNECTING, _READY, _DRAINING = ConnState.CONNECTING, ConnState.READY, ConnState.DRAINING


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionInfo:
    connection: int
    state: ConnState
    active_streams: int
    stream_limit: int
    remaining_requests: int | None


class _Conn:
    __slots__ = ("id", "state", "active", "limit", "remaining", "idle_since")

    def __init__(self, cid: int, limit: int, remaining: int | None) -> None:
        self.id, self.state, self.active = cid, _CONNECTING, 0
        self.limit, self.remaining, self.idle_since = limit, remaining, 0.0

    def capacity(self) -> int:
        """Streams this connection can take now (or, while connecting, once ready)."""
        if self.state is _DRAINING:
            return 0
        spare = self.limit - self.active
        return spare if self.remaining is None else min(spare, self.remaining)


class ConnectionPool:
    """The books of one host's pool; see the module docstring."""

    def __init__(self, settings: PoolSettings = PoolSettings(), resources: ResourceManager | None = None,
                 host: Host | None = None) -> None:
        self.settings = settings
        self.resources = resources
        self.host = host
        self._conns: dict[int, _Conn] = {}
        self._ready: dict[int, _Conn] = {}  # READY with spare streams; last = most recently used
        self._queue: dict[Hashable, None] = {}  # FIFO of waiting requests
        self._active: dict[Hashable, _Conn] = {}
        self._next_id = 1

    # -- reading ----------------------------------------------------------------------
    @property
    def active_requests(self) -> int:
        return len(self._active)

    @property
    def queued_requests(self) -> int:
        return len(self._queue)

    def connections(self) -> list[ConnectionInfo]:
        return [ConnectionInfo(c.id, c.state, c.active, c.limit, c.remaining) for c in self._conns.values()]

    def __repr__(self) -> str:
        idle = sum(1 for c in self._conns.values() if c.state is _READY and c.active == 0)
        return (f"[Requests: {len(self._active)} active, {len(self._queue)} queued | "
                f"Connections: {len(self._conns) - idle} active, {idle} idle]")

    # -- events -----------------------------------------------------------------------
    def handle(self, event: Event, now: float) -> list[Action]:
        out: list[Action] = []
        kind = type(event)
        if kind is RequestArrived:
            self._arrived(event.request, out)
        elif kind is RequestFinished:
            self._finished(event.request, event.close_connection, now, out)
        elif kind is RequestCancelled:
            self._cancelled(event.request, now, out)
        elif kind is IdleTick:
            self._idle_tick(now, out)
        else:
            conn = self._conns.get(getattr(event, "connection", -1))
            if kind is DrainAll:
                self._drain_all(out)
            elif conn is None:
                return out  # a connection we already closed; nothing to do
            elif kind is ConnectionReady:
                self._ready_event(conn, event.max_concurrent_streams, now, out)
            elif kind in (ConnectFailed, ConnectionClosed):
                if conn.state is _CONNECTING:
                    self._connect_failed(conn, getattr(event, "timeout", False), out)
                else:
                    self._closed(conn, out)
            elif kind is GoAway:
                self._drain(conn, "drained", out)
            elif kind is PeerSettings:
                conn.limit = min(self.settings.stream_limit, max(1, event.max_concurrent_streams))
                self._update_ready(conn, mru=False)
            else:  # pragma: no cover
                raise TypeError(f"unknown pool event {event!r}")
        self._dispatch(out)
        self._open_as_needed(out)
        return out

    # -- the per-request fast paths (same books as handle(), no event or action objects) --
    def assign_ready(self, request: Hashable) -> int:
        """`handle(RequestArrived(request))` when it would only assign the request to a
        ready connection (no queue, the requests breaker below its limit): updates the
        books the same way and returns the connection id; 0 (books untouched) when
        the general path is needed."""
        ready = self._ready
        if not ready or self._queue:
            return 0
        rm = self.resources
        if rm is not None and rm.requests >= rm.max_requests:
            return 0  # handle() counts the overflow and fails the request
        if request in self._active:
            raise ValueError(f"pool: request {request!r} is already known")
        conn = next(reversed(ready.values()))
        if rm is not None:
            rm.requests += 1
        conn.active += 1
        remaining = conn.remaining
        if remaining is not None:
            conn.remaining = remaining = remaining - 1
            if remaining == 0:
                conn.state = _DRAINING
        self._active[request] = conn
        if self.host is not None:
            self.host.request_started()
        if conn.active >= conn.limit or remaining == 0 or conn.state is _DRAINING:  # capacity() <= 0
            del ready[conn.id]
        return conn.id

    def request_finished(self, request: Hashable, close: bool, now: float) -> list[Action]:
        """`handle(RequestFinished(request, close))` without the event object."""
        out: list[Action] = []
        conn = self._active.get(request) if not close else None
        if conn is not None and conn.state is _READY:  # _finished's keep-alive case, inlined
            del self._active[request]
            self._stream_done(conn)
            if conn.active == 0:
                conn.idle_since = now
            ready = self._ready
            ready.pop(conn.id, None)  # _update_ready(conn, mru=True)
            if conn.capacity() > 0:
                ready[conn.id] = conn
        else:
            self._finished(request, close, now, out)
        if self._queue:
            self._dispatch(out)
            self._open_as_needed(out)
        return out

    def _arrived(self, request: Hashable, out: list[Action]) -> None:
        if request in self._active or request in self._queue:
            raise ValueError(f"pool: request {request!r} is already known")
        if self._ready and not self._queue:
            self._attach(request, next(reversed(self._ready.values())), out)
            return
        rm = self.resources
        if rm is not None and not rm.try_acquire(Resource.PENDING_REQUESTS):
            out.append(FailRequest(request, FailureReason.OVERFLOW))
            return
        self._queue[request] = None

    def _finished(self, request: Hashable, close: bool, now: float, out: list[Action]) -> None:
        conn = self._active.pop(request, None)
        if conn is None:
            self._unqueue(request, out)
            return
        self._stream_done(conn)
        if close and conn.state is not _DRAINING:
            conn.state = _DRAINING
            self._ready.pop(conn.id, None)
        if conn.state is _DRAINING:
            if conn.active == 0:
                self._close(conn, "connection_close" if close else "drained", out)
            return
        if conn.active == 0:
            conn.idle_since = now
        self._update_ready(conn, mru=True)

    def _cancelled(self, request: Hashable, now: float, out: list[Action]) -> None:
        if request in self._active:
            # An HTTP/1.1 connection with an abandoned exchange cannot be reused; an
            # HTTP/2 stream is reset on its own.
            self._finished(request, self.settings.protocol is PoolProtocol.HTTP1, now, out)
        else:
            self._unqueue(request, out)

    def _unqueue(self, request: Hashable, out: list[Action]) -> None:
        if request not in self._queue:
            return
        del self._queue[request]
        self._release(Resource.PENDING_REQUESTS)
        # Close connections still connecting that the queue no longer needs (newest first).
        connecting = [c for c in self._conns.values() if c.state is _CONNECTING]
        capacity = sum(c.capacity() for c in connecting)
        for conn in reversed(connecting):
            if capacity - conn.capacity() < len(self._queue):
                break
            capacity -= conn.capacity()
            self._close(conn, "excess", out)

    def _ready_event(self, conn: _Conn, peer_streams: int | None, now: float, out: list[Action]) -> None:
        if conn.state is not _CONNECTING:
            return
        if peer_streams is not None:
            conn.limit = min(conn.limit, max(1, peer_streams))
        conn.state = _READY
        conn.idle_since = now
        self._update_ready(conn, mru=True)

    def _connect_failed(self, conn: _Conn, timeout: bool, out: list[Action]) -> None:
        self._forget(conn)
        reason = FailureReason.CONNECT_TIMEOUT if timeout else FailureReason.CONNECTION_FAILURE
        for request in list(self._queue):
            del self._queue[request]
            self._release(Resource.PENDING_REQUESTS)
            out.append(FailRequest(request, reason))

    def _closed(self, conn: _Conn, out: list[Action]) -> None:
        self._forget(conn)
        for request in [r for r, c in self._active.items() if c is conn]:
            del self._active[request]
            self._stream_done(conn)
            out.append(FailRequest(request, FailureReason.CONNECTION_TERMINATION))

    def _idle_tick(self, now: float, out: list[Action]) -> None:
        timeout = self.settings.idle_timeout
        if not timeout:
            return
        for conn in list(self._conns.values()):
            if conn.state is _READY and conn.active == 0 and now - conn.idle_since >= timeout:
                self._close(conn, "idle_timeout", out)

    def _drain_all(self, out: list[Action]) -> None:
        for conn in list(self._conns.values()):
            if conn.state is _CONNECTING:
                if not self._queue:
                    self._close(conn, "drained", out)
            else:
                self._drain(conn, "drained", out)

    # -- mechanics ----------------------------------------------------------------------
    def _attach(self, request: Hashable, conn: _Conn, out: list[Action]) -> None:
        rm = self.resources
        if rm is not None and not rm.try_acquire_request():
            out.append(FailRequest(request, FailureReason.OVERFLOW))
            return
        conn.active += 1
        if conn.remaining is not None:
            conn.remaining -= 1
            if conn.remaining == 0:
                conn.state = _DRAINING
        self._active[request] = conn
        if self.host is not None:
            self.host.request_started()
        out.append(Assign(request, conn.id))
        if conn.capacity() <= 0:
            self._ready.pop(conn.id, None)

    def _stream_done(self, conn: _Conn) -> None:
        conn.active -= 1
        if self.resources is not None:
            self.resources.release_request()
        if self.host is not None:
            self.host.request_finished()

    def _update_ready(self, conn: _Conn, mru: bool) -> None:
        if conn.state is _READY and conn.capacity() > 0:
            if mru:
                self._ready.pop(conn.id, None)
            self._ready[conn.id] = conn
        else:
            self._ready.pop(conn.id, None)

    def _dispatch(self, out: list[Action]) -> None:
        while self._queue and self._ready:
            request = next(iter(self._queue))
            del self._queue[request]
            self._release(Resource.PENDING_REQUESTS)
            self._attach(request, next(reversed(self._ready.values())), out)

    def _open_as_needed(self, out: list[Action]) -> None:
        if not self._queue:
            return
        connecting = sum(c.capacity() for c in self._conns.values() if c.state is _CONNECTING)
        rm = self.resources
        while len(self._queue) > connecting:
            if rm is not None and not rm.try_acquire(Resource.CONNECTIONS):
                if self._conns:
                    return  # wait for a connection to free up
                rm.acquire(Resource.CONNECTIONS)  # never leave a pool without a connection
            per_conn = self.settings.max_requests_per_connection or None
            conn = _Conn(self._next_id, self.settings.stream_limit, per_conn)
            self._next_id += 1
            self._conns[conn.id] = conn
            if self.host is not None:
                self.host.connection_opened()
            out.append(OpenConnection(conn.id))
            connecting += conn.capacity()

    def _drain(self, conn: _Conn, reason: str, out: list[Action]) -> None:
        conn.state = _DRAINING
        self._ready.pop(conn.id, None)
        if conn.active == 0:
            self._close(conn, reason, out)

    def _close(self, conn: _Conn, reason: str, out: list[Action]) -> None:
        self._forget(conn)
        out.append(CloseConnection(conn.id, reason))

    def _forget(self, conn: _Conn) -> None:
        del self._conns[conn.id]
        self._ready.pop(conn.id, None)
        self._release(Resource.CONNECTIONS)
        if self.host is not None:
            self.host.connection_closed()

    def _release(self, kind: Resource) -> None:
        if self.resources is not None:
            self.resources.release(kind)
