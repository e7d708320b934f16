"""Upstream HTTP client connections: HTTP/1.1 (one exchange at a time) and HTTP/2
(one stream per exchange), speaking the exchange interface of runtime/upstream.py.

A connection relays codec events to the exchange bound to it, releases itself to
its `HostPool` when a response (and request) is complete, and reports a close or a
protocol error as `on_reset(kind, detail)` of whatever was in flight. While an
HTTP/1.1 response is handled, the downstream connection is corked so head and body
leave in one write.
"""
from __future__ import annotations

import asyncio

from isthmus.proxy.protocol.events import (ConnectionClosed, Data, GoAway, ProtocolError, REFUSED_STREAM, ResponseHead,
                                           StreamReset, Trailers, WindowUpdate)
from isthmus.proxy.protocol.http1_client import Http1ClientConnection
from isthmus.proxy.protocol.limits import Http1Limits, Http2Settings
from isthmus.proxy.runtime.flow_control import FlowControl
from isthmus.proxy.upstream import pool_events as pe

_H1_LIMITS = Http1Limits(max_headers_kb=96, max_headers_count=200, accept_http_10=True, allow_absolute_url=True)


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
        from isthmus.proxy.protocol.http2 import Http2ClientConnection  # h2 loads on first use

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
