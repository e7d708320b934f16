"""Connection-pool bookkeeping, as transcripts: event in, actions out, repr checked."""
from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from isthmus.proxy.upstream.circuit import Resource, ResourceManager, Thresholds
from isthmus.proxy.upstream.endpoints import Endpoint, HostSet
from isthmus.proxy.upstream.pool import (
    Assign, CloseConnection, ConnectFailed, ConnectionClosed, ConnectionPool, ConnectionReady, DrainAll,
    FailRequest, FailureReason, GoAway, IdleTick, OpenConnection, PeerSettings, PoolProtocol, PoolSettings,
    RequestArrived, RequestCancelled, RequestFinished,
)

H1 = PoolSettings(PoolProtocol.HTTP1)
H2 = PoolSettings(PoolProtocol.HTTP2, max_concurrent_streams=2)


def pool(settings=H1, **limits) -> ConnectionPool:
    return ConnectionPool(settings, ResourceManager(Thresholds(**limits)),
                          HostSet([Endpoint("10.0.0.1", 80)]).hosts[0])


def test_http1_first_request_opens_then_assigns():
    p = pool()
    assert p.handle(RequestArrived("r1"), 0) == [OpenConnection(1)]
    assert repr(p) == "[Requests: 0 active, 1 queued | Connections: 1 active, 0 idle]"
    assert p.handle(ConnectionReady(1), 0.1) == [Assign("r1", 1)]
    assert repr(p) == "[Requests: 1 active, 0 queued | Connections: 1 active, 0 idle]"
    assert p.host.active_requests == 1 and p.host.connections == 1
    assert p.handle(RequestFinished("r1"), 0.2) == []
    assert repr(p) == "[Requests: 0 active, 0 queued | Connections: 0 active, 1 idle]"
    assert p.handle(RequestArrived("r2"), 0.3) == [Assign("r2", 1)]  # reuse, no new connection


def test_http1_one_stream_per_connection_and_finished_hands_over_to_queue():
    p = pool()
    assert p.handle(RequestArrived("r1"), 0) == [OpenConnection(1)]
    assert p.handle(RequestArrived("r2"), 0) == [OpenConnection(2)]
    assert p.handle(ConnectionReady(1), 0) == [Assign("r1", 1)]
    assert p.handle(RequestArrived("r3"), 0) == [OpenConnection(3)]  # 2 queued, 1 connecting... +1
    assert repr(p) == "[Requests: 1 active, 2 queued | Connections: 3 active, 0 idle]"
    assert p.handle(RequestFinished("r1"), 1) == [Assign("r2", 1)]  # FIFO: oldest first
    assert p.handle(ConnectionReady(2), 1) == [Assign("r3", 2)]
    assert p.handle(ConnectionReady(3), 1) == []
    assert repr(p) == "[Requests: 2 active, 0 queued | Connections: 2 active, 1 idle]"


def test_http2_multiplexes_up_to_max_concurrent_streams():
    p = pool(H2)
    assert p.handle(RequestArrived("a"), 0) == [OpenConnection(1)]
    assert p.handle(RequestArrived("b"), 0) == []  # the connecting connection will carry 2
    assert p.handle(RequestArrived("c"), 0) == [OpenConnection(2)]
    assert p.handle(ConnectionReady(1), 0) == [Assign("a", 1), Assign("b", 1)]
    assert repr(p) == "[Requests: 2 active, 1 queued | Connections: 2 active, 0 idle]"
    assert p.handle(RequestFinished("a"), 1) == [Assign("c", 1)]
    assert p.handle(ConnectionReady(2), 1) == []


def test_http2_peer_settings_lower_the_stream_limit():
    p = pool(PoolSettings(PoolProtocol.HTTP2, max_concurrent_streams=100))
    out = [p.handle(RequestArrived(i), 0) for i in range(3)]
    assert out == [[OpenConnection(1)], [], []]
    actions = p.handle(ConnectionReady(1, max_concurrent_streams=1), 0)
    assert actions == [Assign(0, 1), OpenConnection(2)]  # only 1 stream: 2 waiting need more
    assert p.handle(PeerSettings(1, 10), 0) == [Assign(1, 1), Assign(2, 1)]
    assert p.connections()[0].stream_limit == 10


def test_max_pending_requests_overflow_fails_with_uo():
    p = pool(max_pending_requests=1, max_connections=1)
    assert p.handle(RequestArrived("r1"), 0) == [OpenConnection(1)]
    assert p.handle(RequestArrived("r2"), 0) == [FailRequest("r2", FailureReason.OVERFLOW)]
    assert p.resources.overflows["upstream_rq_pending_overflow"] == 1


def test_max_connections_queues_and_counts_cx_overflow():
    p = pool(max_connections=1)
    p.handle(RequestArrived("r1"), 0)
    assert p.handle(RequestArrived("r2"), 0) == []  # queued: no connection may be added
    assert p.resources.overflows["upstream_cx_overflow"] == 1
    assert p.handle(ConnectionReady(1), 0) == [Assign("r1", 1)]
    assert p.handle(RequestFinished("r1"), 0) == [Assign("r2", 1)]


def test_pool_without_connections_may_open_one_beyond_the_cluster_limit():
    rm = ResourceManager(Thresholds(max_connections=1))
    rm.try_acquire(Resource.CONNECTIONS)  # another host's pool holds the only slot
    p = ConnectionPool(H1, rm)
    assert p.handle(RequestArrived("r1"), 0) == [OpenConnection(1)]
    assert rm.overflows["upstream_cx_overflow"] == 1 and rm.count(Resource.CONNECTIONS) == 2


def test_max_requests_overflow_when_attaching():
    p = pool(max_requests=1)
    p.handle(RequestArrived("r1"), 0)
    p.handle(RequestArrived("r2"), 0)
    assert p.handle(ConnectionReady(1), 0) == [Assign("r1", 1)]
    assert p.handle(ConnectionReady(2), 0) == [FailRequest("r2", FailureReason.OVERFLOW)]
    assert p.resources.overflows["upstream_rq_pending_overflow"] == 1


def test_connect_failure_fails_every_queued_request():
    p = pool()
    for r in ("r1", "r2", "r3"):
        p.handle(RequestArrived(r), 0)
    assert p.handle(ConnectFailed(2), 1) == [FailRequest(r, FailureReason.CONNECTION_FAILURE) for r in ("r1", "r2", "r3")]
    assert repr(p) == "[Requests: 0 active, 0 queued | Connections: 2 active, 0 idle]"
    assert p.resources.count(Resource.PENDING_REQUESTS) == 0
    assert p.resources.count(Resource.CONNECTIONS) == 2
    assert p.handle(ConnectFailed(1, timeout=True), 2) == []
    p.handle(RequestArrived("r4"), 3)
    assert p.handle(ConnectFailed(3, timeout=True), 4) == [FailRequest("r4", FailureReason.CONNECT_TIMEOUT)]


def test_idle_timeout_closes_idle_connections_only():
    p = pool(PoolSettings(PoolProtocol.HTTP1, idle_timeout=60))
    for r in ("a", "b"):
        p.handle(RequestArrived(r), 0)
    p.handle(ConnectionReady(1), 0)
    p.handle(ConnectionReady(2), 0)
    p.handle(RequestFinished("a"), 10)
    assert p.handle(IdleTick(), 69.9) == []
    assert p.handle(IdleTick(), 70) == [CloseConnection(1, "idle_timeout")]
    assert repr(p) == "[Requests: 1 active, 0 queued | Connections: 1 active, 0 idle]"
    assert p.handle(IdleTick(), 1000) == []  # "b" is still active on 2
    assert PoolSettings().idle_timeout == 60.0


def test_max_requests_per_connection_closes_after_n():
    p = pool(PoolSettings(PoolProtocol.HTTP1, max_requests_per_connection=2))
    p.handle(RequestArrived("a"), 0)
    p.handle(ConnectionReady(1), 0)
    p.handle(RequestFinished("a"), 1)
    assert p.handle(RequestArrived("b"), 2) == [Assign("b", 1)]
    assert p.handle(RequestArrived("c"), 2) == [OpenConnection(2)]  # 1 is spent: draining
    assert p.handle(RequestFinished("b"), 3) == [CloseConnection(1, "drained")]


def test_http2_max_requests_per_connection_drains_while_streams_finish():
    p = pool(PoolSettings(PoolProtocol.HTTP2, max_concurrent_streams=10, max_requests_per_connection=2))
    for r in "abc":
        p.handle(RequestArrived(r), 0)
    assert p.handle(ConnectionReady(1), 0) == [Assign("a", 1), Assign("b", 1)]
    assert p.handle(ConnectionReady(2), 0) == [Assign("c", 2)]
    assert p.handle(RequestFinished("a"), 1) == []
    assert p.handle(RequestFinished("b"), 1) == [CloseConnection(1, "drained")]


def test_connection_close_response_and_cancel_in_flight_close_http1_connection():
    p = pool()
    p.handle(RequestArrived("a"), 0)
    p.handle(ConnectionReady(1), 0)
    assert p.handle(RequestFinished("a", close_connection=True), 1) == [CloseConnection(1, "connection_close")]
    p.handle(RequestArrived("b"), 2)
    p.handle(ConnectionReady(2), 2)
    assert p.handle(RequestCancelled("b"), 3) == [CloseConnection(2, "connection_close")]
    assert repr(p) == "[Requests: 0 active, 0 queued | Connections: 0 active, 0 idle]"


def test_cancel_queued_request_closes_excess_connecting_connection():
    p = pool()
    p.handle(RequestArrived("a"), 0)
    p.handle(RequestArrived("b"), 0)
    assert p.handle(RequestCancelled("b"), 0) == [CloseConnection(2, "excess")]
    assert p.handle(RequestCancelled("a"), 0) == [CloseConnection(1, "excess")]
    assert p.resources.count(Resource.CONNECTIONS) == 0
    assert p.handle(ConnectionReady(1), 0) == []  # late event for a closed connection


def test_connection_closed_fails_its_streams_and_reopens_for_queue():
    p = pool(H2)
    for r in "abc":
        p.handle(RequestArrived(r), 0)
    p.handle(ConnectionReady(1), 0)
    actions = p.handle(ConnectionClosed(1), 1)
    assert actions == [FailRequest("a", FailureReason.CONNECTION_TERMINATION),
                       FailRequest("b", FailureReason.CONNECTION_TERMINATION)]
    assert p.host.active_requests == 0


def test_goaway_drains_and_new_requests_go_elsewhere():
    p = pool(H2)
    p.handle(RequestArrived("a"), 0)
    p.handle(ConnectionReady(1), 0)
    assert p.handle(GoAway(1), 1) == []
    assert p.handle(RequestArrived("b"), 1) == [OpenConnection(2)]
    assert p.handle(RequestFinished("a"), 2) == [CloseConnection(1, "drained")]


def test_drain_all_when_host_turns_unhealthy():
    p = pool()
    for r in "ab":
        p.handle(RequestArrived(r), 0)
    p.handle(ConnectionReady(1), 0)
    p.handle(ConnectionReady(2), 0)
    p.handle(RequestFinished("a"), 1)
    assert p.handle(DrainAll(), 2) == [CloseConnection(1, "drained")]
    assert p.handle(RequestArrived("c"), 3) == [OpenConnection(3)]  # fresh connection
    assert p.handle(RequestFinished("b"), 4) == [CloseConnection(2, "drained")]


def test_most_recently_used_connection_is_reused_first():
    p = pool()
    for r in "ab":
        p.handle(RequestArrived(r), 0)
    p.handle(ConnectionReady(1), 0)
    p.handle(ConnectionReady(2), 0)
    p.handle(RequestFinished("b"), 1)
    p.handle(RequestFinished("a"), 2)
    assert p.handle(RequestArrived("c"), 3) == [Assign("c", 1)]  # 1 freed last; 2 may idle out


def fast_paths(p: ConnectionPool, event, now: float) -> list:
    """What the runtime does: `assign_ready` / `request_finished`, else `handle`."""
    if type(event) is RequestArrived:
        cid = p.assign_ready(event.request)
        if cid:
            return [Assign(event.request, cid)]
    elif type(event) is RequestFinished:
        return p.request_finished(event.request, event.close_connection, now)
    return p.handle(event, now)


def test_fast_paths_assign_an_idle_connection_or_leave_the_books_alone():
    p = pool(max_requests=1)
    assert p.assign_ready("r1") == 0  # no connection yet: the general path opens one
    assert p.handle(RequestArrived("r1"), 0) == [OpenConnection(1)]
    p.handle(ConnectionReady(1), 0)
    assert p.request_finished("r1", False, 1) == []
    assert p.assign_ready("r2") == 1
    assert repr(p) == "[Requests: 1 active, 0 queued | Connections: 1 active, 0 idle]"
    assert p.request_finished("r2", True, 2) == [CloseConnection(1, "connection_close")]
    h2 = pool(H2, max_requests=1)
    h2.handle(RequestArrived("a"), 0)
    assert h2.handle(ConnectionReady(1), 0) == [Assign("a", 1)]  # one stream to spare, no request slot
    assert h2.assign_ready("b") == 0 and h2.resources.overflows["upstream_rq_pending_overflow"] == 0
    assert h2.handle(RequestArrived("b"), 0) == [FailRequest("b", FailureReason.OVERFLOW)]
    assert h2.resources.overflows["upstream_rq_pending_overflow"] == 1


class PoolMachine(RuleBasedStateMachine):
    """Random event sequences keep the books consistent with the circuit breakers, and
    a twin pool driven through the fast paths keeps exactly the same books."""

    SETTINGS = PoolSettings(PoolProtocol.HTTP2, max_concurrent_streams=3, max_requests_per_connection=5)

    def __init__(self):
        super().__init__()
        self.p = pool(self.SETTINGS, max_connections=3, max_pending_requests=4, max_requests=6)
        self.twin = pool(self.SETTINGS, max_connections=3, max_pending_requests=4, max_requests=6)
        self.now = 0.0
        self.next_request = 0
        self.live: set[int] = set()

    def _run(self, event):
        self.now += 1
        actions = self.p.handle(event, self.now)
        assert fast_paths(self.twin, event, self.now) == actions
        for action in actions:
            if isinstance(action, FailRequest):
                self.live.discard(action.request)

    @rule()
    def arrive(self):
        self.next_request += 1
        self.live.add(self.next_request)
        self._run(RequestArrived(self.next_request))

    @rule(data=st.data())
    def finish_or_cancel(self, data):
        if self.live:
            r = data.draw(st.sampled_from(sorted(self.live)))
            self.live.discard(r)
            self._run(data.draw(st.sampled_from([RequestFinished(r), RequestCancelled(r)])))

    @rule(data=st.data(), kind=st.sampled_from([ConnectionReady, ConnectFailed, ConnectionClosed, GoAway]))
    def connection_event(self, data, kind):
        conns = self.p.connections()
        if conns:
            self._run(kind(data.draw(st.sampled_from([c.connection for c in conns]))))

    @rule()
    def tick(self):
        self.now += 100
        self._run(IdleTick())

    @invariant()
    def books_balance(self):
        rm, p = self.p.resources, self.p
        assert rm.count(Resource.REQUESTS) == p.active_requests == p.host.active_requests
        assert rm.count(Resource.PENDING_REQUESTS) == p.queued_requests <= 4
        assert rm.count(Resource.CONNECTIONS) == len(p.connections()) == p.host.connections
        assert p.active_requests + p.queued_requests == len(self.live)
        for c in p.connections():
            assert 0 <= c.active_streams <= c.stream_limit

    @invariant()
    def twin_keeps_the_same_books(self):
        p, q = self.p, self.twin
        assert repr(q) == repr(p) and q.connections() == p.connections()
        assert [q.resources.count(k) for k in Resource] == [p.resources.count(k) for k in Resource]
        assert q.resources.overflows == p.resources.overflows and q.host.active_requests == p.host.active_requests


class Http1PoolMachine(PoolMachine):
    SETTINGS = PoolSettings(PoolProtocol.HTTP1, max_requests_per_connection=3)


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestHttp1PoolMachine = Http1PoolMachine.TestCase
TestHttp1PoolMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_failure_reasons_map_to_envoy_response_flags():
    assert [r.response_flag for r in FailureReason] == ["UO", "UF", "UF", "UC"]
