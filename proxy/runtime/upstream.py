"""Upstream sockets: one `HostPool` per (host, protocol, priority) over the pure pool
books (upstream/pool.py), and the HTTP/1.1 and HTTP/2 client connections.

The router hands a pool an *exchange* (filters/router.py's attempt) and gets called
back: `on_connection(conn)` once a connection is assigned (write the request with
`conn.start(...)`, `conn.send_data(...)`), `on_pool_failure(reason, detail)` (UO/UF),
then `on_response_head(head)`, `on_response_data(data, end)`,
`on_response_trailers(headers)` and `on_reset(kind, detail)` with kind
`connection_termination` | `remote_reset` | `protocol_error` | `refused_stream`.
When a response is complete the connection releases itself to the pool; an exchange
given up early calls `conn.abandon(exchange)` (HTTP/1.1: the connection is closed,
HTTP/2: the stream is reset). TLS (mesh mTLS included) is asyncio's client TLS; the
server's SANs are checked after the handshake (runtime/tls.py) and a mismatch fails
the connect with an upstream_transport_failure_reason.
"""
from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from isthmus.proxy.protocol.events import (ConnectionClosed, Data, GoAway, ProtocolError, REFUSED_STREAM, ResponseHead,
                                           StreamReset, Trailers, WindowUpdate)
from isthmus.proxy.protocol.http1_client import Http1ClientConnection
from isthmus.proxy.protocol.http2 import Http2ClientConnection
from isthmus.proxy.protocol.limits import Http1Limits, Http2Settings
from isthmus.proxy.runtime.flow_control import FlowControl
from isthmus.proxy.runtime.tls import TlsConfigError
from isthmus.proxy.upstream import pool_events as pe
from isthmus.proxy.upstream.pool import ConnectionPool, PoolProtocol, PoolSettings

if TYPE_CHECKING:
    from isthmus.proxy.runtime.cluster import ClusterState, HostInfo

H1, H2 = "h1", "h2"
# Below common server keep-alive timeouts (uvicorn 5 s, nginx 75 s): close idle first.
DEFAULT_IDLE_TIMEOUT = 4.0
_H1_LIMITS = Http1Limits(max_headers_kb=96, max_headers_count=200, accept_http_10=True, allow_absolute_url=True)


class HostPool:
    """One host's connections of one protocol; see the module docstring."""

    def __init__(self, cluster: "ClusterState", info: "HostInfo", protocol: str, priority: str = "default") -> None:
        http = cluster.config.http
        idle = http.idle_timeout
        idle = DEFAULT_IDLE_TIMEOUT if idle is None or idle > DEFAULT_IDLE_TIMEOUT else idle
        settings = PoolSettings(PoolProtocol.HTTP2 if protocol == H2 else PoolProtocol.HTTP1,
                                max(1, http.max_concurrent_streams), http.max_requests_per_connection or 0, idle)
        self.books = ConnectionPool(settings, cluster.breakers.get(priority) or cluster.breakers["default"], info.host)
        self.cluster = cluster
        self.info = info
        self.protocol = protocol
        self.loop = cluster.rt.loop
        self.conns: dict[int, "UpstreamConnection"] = {}
        self.failure_detail = ""
        self.draining = False
        self._closing: set[int] = set()  # connections the books closed while connecting

    def __repr__(self) -> str:
        return repr(self.books)

    # -- the router's calls ------------------------------------------------------
    def request(self, exchange) -> None:
        self._run(self.books.handle(pe.RequestArrived(exchange), self.loop.time()))

    def release(self, exchange, close: bool) -> None:
        self._run(self.books.handle(pe.RequestFinished(exchange, close), self.loop.time()))

    def cancel(self, exchange) -> None:
        self._run(self.books.handle(pe.RequestCancelled(exchange), self.loop.time()))

    def drain(self) -> None:
        self.draining = True
        self._run(self.books.handle(pe.DrainAll(), self.loop.time()))

    def tick(self) -> None:
        self._run(self.books.handle(pe.IdleTick(), self.loop.time()))

    @property
    def idle(self) -> bool:
        return not self.conns and not self.books.queued_requests

    # -- actions -----------------------------------------------------------------------
    def _run(self, actions) -> None:
        for a in actions:
            kind = a.__class__
            if kind is pe.Assign:
                a.request.on_connection(self.conns[a.connection])
            elif kind is pe.OpenConnection:
                self.cluster.stats.upstream_cx_total.value += 1  # type: ignore[attr-defined]
                self.info.cx_total += 1
                self.loop.create_task(self._connect(a.connection))
            elif kind is pe.CloseConnection:
                conn = self.conns.get(a.connection)
                if conn is not None:
                    conn.forgotten = True
                    conn.close()
                else:
                    self._closing.add(a.connection)
            elif kind is pe.FailRequest:
                stats = self.cluster.stats
                if a.reason is pe.FailureReason.OVERFLOW:
                    stats.upstream_rq_pending_overflow.value += 1  # type: ignore[attr-defined]
                a.request.on_pool_failure(a.reason, self.failure_detail)

    async def _connect(self, cid: int) -> None:
        cluster, info = self.cluster, self.info
        host = info.host
        loop = self.loop
        stats = cluster.stats
        conn_cls = UpstreamH2 if self.protocol == H2 else UpstreamH1
        ctx = sni = None
        client_tls = None
        try:
            if info.tls is not None:
                client_tls = cluster.rt.tls.client(info.tls, cluster.manager_secrets())
                ctx, sni = client_tls.context, client_tls.sni
            local = (cluster.config.source_address, cluster.config.source_port) if cluster.config.source_address else None
            transport, conn = await asyncio.wait_for(loop.create_connection(
                lambda: conn_cls(self, cid), host.address, host.port, ssl=ctx,
                server_hostname=(sni or "") if ctx is not None else None, local_addr=local,
                ssl_handshake_timeout=cluster.config.connect_timeout if ctx is not None else None),
                cluster.config.connect_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            stats.upstream_cx_connect_timeout.value += 1  # type: ignore[attr-defined]
            self._failed(cid, True, "")
            return
        except TlsConfigError as exc:
            self._failed(cid, False, f"TLS_error:|{exc}")
            return
        except ssl.SSLError as exc:
            stats.upstream_cx_ssl_handshake_error.value += 1  # type: ignore[attr-defined]
            self._failed(cid, False, f"TLS_error:|{exc.reason or exc}:TLS_error_end")
            return
        except OSError as exc:
            self._failed(cid, False, _errno_reason(exc))
            return
        if client_tls is not None:
            reason = client_tls.verify(transport.get_extra_info("ssl_object"))
            if reason is not None:
                stats.upstream_cx_ssl_handshake_error.value += 1  # type: ignore[attr-defined]
                transport.abort()
                self._failed(cid, False, reason)
                return
            conn.peer = transport.get_extra_info("ssl_object")
        if cid in self._closing:  # the books gave up on it while connecting
            self._closing.discard(cid)
            transport.close()
            return
        self.conns[cid] = conn
        info.cx_active += 1
        stats.upstream_cx_active.value += 1  # type: ignore[attr-defined]
        self._run(self.books.handle(pe.ConnectionReady(cid, None), loop.time()))
        if self.draining:
            self.drain()

    def _failed(self, cid: int, timeout: bool, detail: str) -> None:
        self.cluster.stats.upstream_cx_connect_fail.value += 1  # type: ignore[attr-defined]
        self.info.cx_connect_fail += 1
        self.failure_detail = detail
        self._closing.discard(cid)
        self.cluster.report(self.info, self.cluster.outlier_result(None, "timeout" if timeout else "connect"))
        self._run(self.books.handle(pe.ConnectFailed(cid, timeout), self.loop.time()))

    def connection_closed(self, conn: "UpstreamConnection") -> None:
        if self.conns.pop(conn.cid, None) is not None:
            self.info.cx_active -= 1
            stats = self.cluster.stats
            stats.upstream_cx_active.value -= 1  # type: ignore[attr-defined]
            stats.upstream_cx_destroy.value += 1  # type: ignore[attr-defined]
            if not conn.forgotten:
                stats.upstream_cx_destroy_remote.value += 1  # type: ignore[attr-defined]
                self._run(self.books.handle(pe.ConnectionClosed(conn.cid), self.loop.time()))


def _errno_reason(exc: OSError) -> str:
    return f"delayed_connect_error:_{exc.errno}" if exc.errno else str(exc)


class UpstreamConnection(asyncio.Protocol):
    """What both protocols share: transport, flow control, close bookkeeping."""

    def __init__(self, pool: HostPool, cid: int) -> None:
        self.pool = pool
        self.cid = cid
        self.transport = None
        self.flow = FlowControl()
        self.forgotten = False  # the books closed it: they need no ConnectionClosed
        self.closed = False
        self.peer = None  # ssl object when TLS
        self.requests = 0
        self.local = ""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.flow.set_transport(transport)
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple):
            self.local = f"[{sock[0]}]:{sock[1]}" if ":" in sock[0] else f"{sock[0]}:{sock[1]}"

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.flow.close()
            if self.transport is not None:
                self.transport.close()

    def peer_principal(self) -> str:
        if self.peer is None:
            return ""
        from isthmus.proxy.runtime.tls import PeerCert

        der = self.peer.getpeercert(binary_form=True)
        return PeerCert(der, self.peer.getpeercert()).spiffe_id if der else ""


class UpstreamH1(UpstreamConnection):
    """HTTP/1.1: one exchange at a time."""

    def __init__(self, pool: HostPool, cid: int) -> None:
        super().__init__(pool, cid)
        self.codec = Http1ClientConnection(_H1_LIMITS)
        self.exchange = None
        self.request_done = True
        self.response_done = True

    def start(self, exchange, method: bytes, target: bytes, authority: bytes, headers, body: bytes, end_stream: bool,
              upgrade: bytes | None = None, scheme: bytes = b"http") -> None:
        self.exchange = exchange
        self.requests += 1
        self.request_done = end_stream
        self.response_done = False
        self.transport.write(self.codec.send_request(method, target, authority, headers, body, end_stream, self.requests, upgrade))

    def send_data(self, exchange, data: bytes, end_stream: bool) -> None:
        if exchange is self.exchange and not self.closed:
            out = self.codec.send(Data(self.requests, data, end_stream))
            if out:
                self.transport.write(out)
            if end_stream and self.codec.tunnel:
                if self.transport.can_write_eof():
                    self.transport.write_eof()
                return
            if end_stream:
                self.request_done = True
                if self.response_done:
                    self._finish()

    def send_trailers(self, exchange, headers) -> None:
        if exchange is self.exchange and not self.closed:
            out = self.codec.send(Trailers(self.requests, headers))
            if out:
                self.transport.write(out)
            self.request_done = True
            if self.response_done:
                self._finish()

    def ack(self, exchange, n: int) -> None:
        pass  # HTTP/1.1: backpressure is the transport's

    def pending_send_bytes(self, exchange) -> int:
        return 0

    def abandon(self, exchange) -> None:
        if exchange is self.exchange:
            self.exchange = None
            self.close()
            self.pool.release(exchange, True)

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        ds = ex.downstream if ex is not None else None
        if ds is not None and ds.cork is None:
            ds.cork = []  # the response head and body leave in one write
            try:
                self._events(ex, data)
            finally:
                ds.uncork()
        else:
            self._events(ex, data)

    def _events(self, ex, data: bytes) -> None:
        events = self.codec.receive_data(data)
        if len(events) == 2 and ex is not None:
            head, body = events
            if head.__class__ is ResponseHead and body.__class__ is Data and body.end_stream and not head.end_stream:
                self.response_done = True  # the common case: a small response read at once
                ex.on_response_whole(head, body.data)
                if self.request_done:
                    self._finish()
                return
        for ev in events:
            cls = ev.__class__
            if ex is None:
                if cls is ProtocolError or cls is ResponseHead or cls is Data:
                    self.close()  # bytes nobody asked for
                    return
                continue
            if cls is Data:
                if ev.end_stream:
                    self.response_done = True
                    ex.on_response_data(ev.data, True)
                    if self.request_done:
                        self._finish()
                else:
                    ex.on_response_data(ev.data, False)
            elif cls is ResponseHead:
                if ev.end_stream:
                    self.response_done = True
                    ex.on_response_head(ev)
                    if self.request_done:
                        self._finish()
                else:
                    ex.on_response_head(ev)
            elif cls is Trailers:
                self.response_done = True
                ex.on_response_trailers(ev.headers)
                if self.request_done:
                    self._finish()
            elif cls is StreamReset:
                self._lost(ex, "connection_termination", "")
            elif cls is ProtocolError:
                self._lost(ex, "protocol_error", ev.reason)
                return
            ex = self.exchange

    def _finish(self) -> None:
        ex, self.exchange = self.exchange, None
        if ex is not None:
            self.pool.release(ex, not self.codec.reusable)

    def _lost(self, ex, kind: str, detail: str) -> None:
        self.exchange = None
        self.close()
        self.pool.release(ex, True)
        ex.on_reset(kind, detail)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.flow.close()
        ex = self.exchange
        if ex is not None and not self.response_done:
            events = self.codec.receive_data(b"")
            for ev in events:
                if ev.__class__ is Data and ev.end_stream:  # a body delimited by the close
                    self.response_done = True
                    ex.on_response_data(ev.data, True)
                    self.exchange = None
                    self.pool.release(ex, True)
                    break
            else:
                self._lost(ex, "connection_termination", "")
        self.pool.connection_closed(self)


class UpstreamH2(UpstreamConnection):
    """HTTP/2: many exchanges, one stream each."""

    def __init__(self, pool: HostPool, cid: int) -> None:
        super().__init__(pool, cid)
        http = pool.cluster.config.http
        self.codec = Http2ClientConnection(Http2Settings(
            initial_stream_window_size=min(http.initial_stream_window_size, 1024 * 1024),
            initial_connection_window_size=min(http.initial_connection_window_size, 8 * 1024 * 1024),
            hpack_table_size=http.hpack_table_size, max_headers_kb=96, max_headers_count=200))
        self.streams: dict[int, object] = {}
        self.ids: dict[object, int] = {}

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        transport.write(self.codec.data_to_send())

    def _flush(self) -> None:
        out = self.codec.data_to_send()
        if out and not self.closed:
            self.transport.write(out)

    def start(self, exchange, method: bytes, target: bytes, authority: bytes, headers, body: bytes, end_stream: bool,
              upgrade: bytes | None = None, scheme: bytes = b"http") -> None:
        self.requests += 1
        sid = self.codec.send_request(method, target, authority, headers, scheme, end_stream and not body)
        self.streams[sid] = exchange
        self.ids[exchange] = sid
        if body:
            self.codec.send_data(sid, body, end_stream)
        self._flush()

    def send_data(self, exchange, data: bytes, end_stream: bool) -> None:
        sid = self.ids.get(exchange)
        if sid is not None:
            self.codec.send_data(sid, data, end_stream)
            self._flush()

    def send_trailers(self, exchange, headers) -> None:
        sid = self.ids.get(exchange)
        if sid is not None:
            self.codec.send_trailers(sid, headers)
            self._flush()

    def ack(self, exchange, n: int) -> None:
        sid = self.ids.get(exchange)
        if sid is not None:
            self.codec.acknowledge_received_data(sid, n)
            self._flush()

    def pending_send_bytes(self, exchange) -> int:
        sid = self.ids.get(exchange)
        return self.codec.pending_send_bytes(sid) if sid is not None else 0

    def abandon(self, exchange) -> None:
        sid = self.ids.pop(exchange, None)
        if sid is not None:
            self.streams.pop(sid, None)
            self.codec.reset_stream(sid)
            self._flush()
            self.pool.release(exchange, False)

    def _done(self, sid: int) -> None:
        ex = self.streams.pop(sid, None)
        if ex is not None:
            self.ids.pop(ex, None)
            self.pool.release(ex, False)

    def data_received(self, data: bytes) -> None:
        streams = self.streams
        for ev in self.codec.receive_data(data):
            cls = ev.__class__
            if cls is Data:
                ex = streams.get(ev.stream_id)
                if ex is not None:
                    if ev.end_stream:
                        self._done(ev.stream_id)
                    ex.on_response_data(ev.data, ev.end_stream)
            elif cls is ResponseHead:
                ex = streams.get(ev.stream_id)
                if ex is not None:
                    if ev.end_stream:
                        self._done(ev.stream_id)
                    ex.on_response_head(ev)
            elif cls is Trailers:
                ex = streams.get(ev.stream_id)
                if ex is not None:
                    self._done(ev.stream_id)
                    ex.on_response_trailers(ev.headers)
            elif cls is StreamReset:
                ex = streams.pop(ev.stream_id, None)
                if ex is not None:
                    self.ids.pop(ex, None)
                    self.pool.release(ex, False)
                    ex.on_reset("refused_stream" if ev.error_code == REFUSED_STREAM else "remote_reset", "")
            elif cls is WindowUpdate:
                ex = streams.get(ev.stream_id)
                if ex is not None:
                    ex.on_window(ev.pending)
            elif cls is GoAway:
                self.pool.books.handle(pe.GoAway(self.cid), self.pool.loop.time())
                for sid in [s for s in streams if s > ev.last_stream_id]:
                    ex = streams.pop(sid)
                    self.ids.pop(ex, None)
                    self.pool.release(ex, False)
                    ex.on_reset("refused_stream", "GOAWAY")
            elif cls is ProtocolError:
                self._fail_all("protocol_error", ev.reason)
                self.close()
                return
            elif cls is ConnectionClosed:
                break
        self._flush()

    def _fail_all(self, kind: str, detail: str) -> None:
        pending = list(self.streams.values())
        self.streams.clear()
        self.ids.clear()
        for ex in pending:
            self.pool.release(ex, True)
            ex.on_reset(kind, detail)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.flow.close()
        self._fail_all("connection_termination", "")
        self.pool.connection_closed(self)
