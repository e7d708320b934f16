"""`HttpConnection`: the HTTP connection manager's connection state (per-request state
is runtime/stream.py's `Stream`).

An asyncio Protocol on the socket (or on `TlsTransport`). The codec is HTTP/2 when
ALPN said h2 or the HCM says http2, HTTP/1.1 when it says http1, else decided by the
first bytes (the h2 preface). HTTP/1.1 runs one stream at a time: pipelined requests
wait (reading paused) until the current response is done. Writes made while the
other side's bytes are being processed are corked into one `transport.write`.
Codec errors answer with the codec's status (400, 431, 426, 501, 505) and close;
a partial head older than request_headers_timeout gets 408; other connections are
never affected. `drain()` closes idle connections and makes busy ones close (HTTP/1.1
`connection: close`, HTTP/2 GOAWAY) after their streams.
"""
from __future__ import annotations

import time
from http import HTTPStatus

from isthmus.proxy.filters.local_reply import DPE
from isthmus.proxy.protocol.events import (CANCEL, NO_ERROR, ConnectionClosed, Data, GoAway, ProtocolError, RequestHead,
                                           ResponseHead, StreamReset, Trailers, WindowUpdate)
from isthmus.proxy.protocol.http1_server import Http1ServerConnection
from isthmus.proxy.runtime.flow_control import HIGH_WATER, LOW_WATER, FlowControl
from isthmus.proxy.runtime.stream import Stream

CLOSE = (b"connection", b"close")
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # protocol/http2.py's; that module (h2) loads on first use


def _error_response(status: int, rt) -> bytes:
    phrase = HTTPStatus(status).phrase.encode() if status in HTTPStatus._value2member_map_ else b"Error"
    body = b"request header timeout" if status == 408 else phrase
    return (b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\ncontent-type: text/plain\r\ndate: %s\r\nserver: isthmus\r\n"
            b"connection: close\r\n\r\n%s" % (status, phrase, len(body), rt.date(), body))


class HttpConnection:
    def __init__(self, rt, info, hcm, listener) -> None:
        self.rt = rt
        self.loop = rt.loop
        self.info = info
        self.hcm = hcm
        self.listener = listener
        self.buffer_limit = listener.buffer_limit
        self.transport = None
        self.flow = FlowControl()
        self.codec = None
        self.is_h2 = False
        self.protocol_name = "HTTP/1.1"
        self.stream: Stream | None = None  # HTTP/1.1: the current stream
        self.streams: dict[int, Stream] = {}  # HTTP/2
        self.deferred: list | None = None
        self.cork: list | None = None
        self.waiters: dict[int, list] = {}
        self.draining = False
        self.closed = False
        self.close_after = False
        self.requests = 0
        self.last_activity = 0.0
        self.header_timer = None
        self.sniff = b""
        self.wall_offset = time.time() - self.loop.time()  # loop time → wall clock (access logs)

    # -- asyncio Protocol ----------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.flow.set_transport(transport)
        if self.info.remote is None:
            self.info.fill(transport)
            self.info.conn_id = next(self.rt.connection_ids)
        self.rt.connections.add(self)
        self.last_activity = self.loop.time()
        stats = self.hcm.stats
        stats.downstream_cx_total.value += 1
        stats.downstream_cx_active.value += 1
        codec = self.hcm.config.codec_type
        if self.info.alpn == "h2" or codec == "http2":
            self._start_h2()
        elif codec == "http1" or self.info.alpn in ("http/1.1", "http/1.0"):
            self._start_h1()

    def _start_h1(self) -> None:
        self.codec = Http1ServerConnection(self.hcm.h1_limits)

    def _start_h2(self) -> None:
        from isthmus.proxy.protocol.http2 import Http2ServerConnection

        self.codec = Http2ServerConnection(self.hcm.h2_settings)
        self.is_h2 = True
        self.protocol_name = "HTTP/2"
        self.write(self.codec.data_to_send())

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        codec = self.codec
        if codec is None:
            data = self.sniff + data
            n = min(len(data), len(H2_PREFACE))
            if data[:n] == H2_PREFACE[:n]:
                if n < len(H2_PREFACE):
                    self.sniff = data
                    return
                self._start_h2()
            else:
                self._start_h1()
            self.sniff = b""
            codec = self.codec
        if self.is_h2:
            self._h2_received(data)
            return
        events = codec.receive_data(data)
        if self.deferred is not None:
            self.deferred.extend(events)
            return
        self._h1_events(events)
        if self.stream is None and self.header_timer is None and not self.closed and getattr(codec, "_head_raw", 0):
            self._arm_header_timer()  # a head arrived in part: it has request_headers_timeout to finish

    def eof_received(self) -> bool:
        if self.is_h2 or self.codec is None:
            return False
        events = self.codec.receive_data(b"")
        if self.deferred is not None:
            self.deferred.extend(events)
            return True
        self._h1_events(events)
        if self.stream is None:
            return False
        self.close_after = True  # answer the request in flight, then close
        return True

    def connection_lost(self, exc) -> None:
        if self.closed:
            return
        self.closed = True
        self.flow.close()
        if self.header_timer is not None:
            self.header_timer.cancel()
        self.rt.connections.discard(self)
        self.hcm.stats.downstream_cx_active.value -= 1
        for s in ([self.stream] if self.stream is not None else []) + list(self.streams.values()):
            self.hcm.stats.downstream_cx_destroy_remote_active_rq.value += 1
            s.on_downstream_reset()
        self.stream = None
        self.streams.clear()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- writing ------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not data or self.closed:
            return
        cork = self.cork
        if cork is not None:
            cork.append(data)
        else:
            self.transport.write(data)

    def uncork(self) -> None:
        cork, self.cork = self.cork, None
        if cork and not self.closed:
            self.transport.write(cork[0] if len(cork) == 1 else b"".join(cork))

    # -- HTTP/1.1 -----------------------------------------------------------------------------
    def _h1_events(self, events) -> None:
        for i, ev in enumerate(events):
            cls = ev.__class__
            if cls is RequestHead:
                if self.stream is not None:
                    self.deferred = list(events[i:])
                    self.flow.pause_reading("pipeline")
                    return
                self._new_stream(ev)
            elif cls is Data:
                s = self.stream
                if s is not None:
                    s.on_request_data(ev.data, ev.end_stream)
            elif cls is Trailers:
                if self.stream is not None:
                    self.stream.on_request_trailers(ev.headers)
            elif cls is ProtocolError:
                self._protocol_error(ev)
                return
            elif cls is StreamReset:
                if self.stream is not None:
                    self.stream.on_downstream_reset()
            elif cls is ConnectionClosed:
                if self.stream is None:
                    self.close()

    def _new_stream(self, head: RequestHead) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        self.requests += 1
        hcm = self.hcm
        s = Stream(self, head)
        if self.is_h2:
            hcm.stats.downstream_rq_http2_total.value += 1
            self.streams[head.stream_id] = s
        else:
            hcm.stats.downstream_rq_http1_total.value += 1
            self.stream = s
            if head.expect_continue and not hcm.config.proxy_100_continue:
                self.write(self.codec.send_continue())
                head.headers = [(k, v) for k, v in head.headers if k != b"expect"]
        s.begin()

    def _protocol_error(self, ev: ProtocolError) -> None:
        self.hcm.stats.downstream_cx_protocol_error.value += 1
        s = self.stream
        if s is not None and not s.done:
            s.flags |= DPE
            if not s.response_started and s.request_done is False:
                s.local_reply(ev.status_code, HTTPStatus(ev.status_code).phrase.encode(), DPE, "codec_error")
            else:
                s.reset()
            self.close()
            return
        try:
            self.write(self.codec.send_response_head_and_body(
                ev.status_code, [(b"content-type", b"text/plain"), (b"date", self.rt.date()), (b"server", b"isthmus"), CLOSE],
                HTTPStatus(ev.status_code).phrase.encode() if ev.status_code in HTTPStatus._value2member_map_ else b"Error"))
        except Exception:  # noqa: BLE001 - the codec could not frame it: raw bytes
            self.write(_error_response(ev.status_code, self.rt))
        self.close()

    def _arm_header_timer(self) -> None:
        timeout = self.hcm.request_headers_timeout
        if timeout and not self.is_h2:
            self.header_timer = self.loop.call_later(timeout, self._header_timeout)

    def _header_timeout(self) -> None:
        self.header_timer = None
        if self.stream is not None or self.closed or self.is_h2:
            return
        codec = self.codec
        if codec is None or not getattr(codec, "_head_raw", 0):
            return  # nothing pending: the idle timeout's business
        self.hcm.stats.downstream_rq_header_timeout.value += 1
        self.transport.write(_error_response(408, self.rt))
        self.close()

    # -- HTTP/2 --------------------------------------------------------------------------------
    def _h2_received(self, data: bytes) -> None:
        codec = self.codec
        self.cork = []
        try:
            for ev in codec.receive_data(data):
                cls = ev.__class__
                if cls is Data:
                    s = self.streams.get(ev.stream_id)
                    if s is not None:
                        s.on_request_data(ev.data, ev.end_stream)
                    else:
                        codec.acknowledge_received_data(ev.stream_id, len(ev.data))
                elif cls is RequestHead:
                    if self.draining:
                        codec.reset_stream(ev.stream_id, 7)  # REFUSED_STREAM
                        continue
                    self._new_stream(ev)
                elif cls is Trailers:
                    s = self.streams.get(ev.stream_id)
                    if s is not None:
                        s.on_request_trailers(ev.headers)
                elif cls is StreamReset:
                    s = self.streams.get(ev.stream_id)
                    if s is not None:
                        s.on_downstream_reset()
                elif cls is WindowUpdate:
                    if ev.pending < LOW_WATER:
                        self._run_waiters(ev.stream_id)
                elif cls is ProtocolError:
                    self.hcm.stats.downstream_cx_protocol_error.value += 1
                    self.write(codec.data_to_send())
                    self.close()
                    return
                elif cls is GoAway or cls is ConnectionClosed:
                    continue
            self.write(codec.data_to_send())
        finally:
            self.uncork()

    def _run_waiters(self, sid: int) -> None:
        callbacks = self.waiters.pop(sid, None)
        if callbacks:
            for cb in callbacks:
                cb()
        s = self.streams.get(sid)
        if s is not None:
            s.on_window()

    # -- what streams call ---------------------------------------------------------------------
    def send_head(self, s: Stream, status: int, headers: list, end_stream: bool) -> None:
        if self.draining and not self.is_h2:
            headers = [*headers, CLOSE]
        self.write(self.codec.send(ResponseHead(s.sid, status, headers, end_stream=end_stream)))

    def send_whole(self, s: Stream, status: int, headers: list, body: bytes) -> None:
        if self.is_h2:
            self.write(self.codec.send_response_head_and_body(s.sid, status, headers, body))
            return
        if self.draining:
            headers = [*headers, CLOSE]
        self.write(self.codec.send_response_head_and_body(status, headers, body))

    def send_data(self, s: Stream, data: bytes, end: bool) -> None:
        if self.is_h2:
            self.codec.send_data(s.sid, data, end)
            self.write(self.codec.data_to_send())
        else:
            self.write(self.codec.send(Data(s.sid, data, end)))

    def send_trailers(self, s: Stream, headers: list) -> None:
        self.write(self.codec.send(Trailers(s.sid, headers)))

    def ack(self, s: Stream, n: int) -> None:
        if self.is_h2 and n:
            self.codec.acknowledge_received_data(s.sid, n)
            self.write(self.codec.data_to_send())

    def blocked(self, s: Stream) -> bool:
        if self.flow.write_paused:
            return True
        return self.is_h2 and self.codec.pending_send_bytes(s.sid) > HIGH_WATER

    def when_writable(self, s: Stream, callback) -> None:
        if self.flow.write_paused:
            self.flow.on_drain(callback)
        elif self.is_h2 and self.codec.pending_send_bytes(s.sid) > HIGH_WATER:
            self.waiters.setdefault(s.sid, []).append(callback)
        else:
            callback()

    def response_before_request(self, s: Stream) -> None:
        if self.is_h2:
            self.codec.reset_stream(s.sid, NO_ERROR)
            self.write(self.codec.data_to_send())
        else:
            self.close_after = True

    def reset_stream(self, s: Stream) -> None:
        if self.is_h2:
            self.codec.reset_stream(s.sid, CANCEL)
            self.write(self.codec.data_to_send())
        else:
            self.close_after = True
            if self.transport is not None:
                self.transport.abort() if s.response_started else self.transport.close()

    def stream_finished(self, s: Stream) -> None:
        if self.is_h2:
            self.streams.pop(s.sid, None)
            self.waiters.pop(s.sid, None)
            if self.draining and not self.streams:
                self.close()
            return
        if self.stream is s:
            self.stream = None
        codec = self.codec
        if self.close_after or self.draining or codec.must_close:
            self.close()
            return
        limit = self.hcm.config.max_requests_per_connection
        if limit and self.requests >= limit:
            self.draining = True
        deferred = self.deferred
        if deferred is not None:
            self.deferred = None
            self.flow.resume_reading("pipeline")
            self._h1_events(deferred)
        if self.stream is None and not self.closed and getattr(codec, "_head_raw", 0):
            self._arm_header_timer()

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.uncork()
        if self.transport is not None:
            self.transport.close()

    def drain(self) -> None:
        """Finish what is in flight, take nothing new, then close."""
        if self.draining:
            return
        self.draining = True
        if self.is_h2:
            self.write(self.codec.close(0, max(self.streams, default=0)))
            if not self.streams:
                self.close()
        elif self.stream is None:
            self.close()

    def tick(self, now: float) -> None:
        """Idle and stream-idle timeouts (called about once a second)."""
        cfg = self.hcm.config
        idle = cfg.idle_timeout
        if idle and not self.streams and self.stream is None and now - self.last_activity > idle:
            self.drain()
            return
        if self.stream is None and not self.streams:
            return
        sit = cfg.stream_idle_timeout
        quiet = now - self.last_activity
        for s in ([self.stream] if self.stream is not None else []) + list(self.streams.values()):
            limit = sit
            route = s.route
            if route is not None:  # a route's idle_timeout overrides the HCM's (0: none)
                own = getattr(route.action, "idle_timeout", None)
                if own is not None:
                    limit = own
            if limit and quiet > limit:
                from isthmus.proxy.filters.local_reply import BODY_STREAM_TIMEOUT, SI
                self.hcm.stats.downstream_rq_idle_timeout.value += 1
                # Envoy: 504 once the request was received whole, 408 while it was still arriving
                s.local_reply(504 if s.request_done else 408, BODY_STREAM_TIMEOUT, SI, "stream_idle_timeout")
