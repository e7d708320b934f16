"""HTTP/2 (RFC 9113, our own sans-IO implementation), speaking the same events as the
HTTP/1.1 codecs.

``receive_data(bytes) -> events``; ``send(event) -> bytes``; bytes the codec produces
on its own (SETTINGS/PING acks, WINDOW_UPDATE, RST_STREAM, GOAWAY) come out of
`data_to_send()`.
Pseudo-headers map onto RequestHead/ResponseHead fields and never appear in
``headers``; cookie crumbs are joined for HTTP/1 peers.

Flow control, both ways:
- received DATA counts against the peer's window until the runtime calls
  `acknowledge_received_data(stream_id, n)` after forwarding (backpressure);
  padding is acknowledged at once, and a reset stream's unacknowledged bytes too.
- `send_data` splits by the peer's max frame size and window and queues what does
  not fit; queued bytes, a deferred END_STREAM and trailers go out as WINDOW_UPDATEs
  arrive, reported as `WindowUpdate(stream_id, pending)` events. `pending_send_bytes`
  lets the runtime stop reading the source above a high-water mark.

Limits as Envoy applies them: a header list over ``max_headers_kb`` or
``max_headers_count`` resets that stream (RST_STREAM INTERNAL_ERROR, reported as
`StreamReset(remote=False)`); a request over ``max_concurrent_streams`` is refused
(REFUSED_STREAM); a malformed message (RFC 9113 section 8: bad pseudo-headers,
connection-specific fields, a body that does not match content-length ...) resets
that stream (PROTOCOL_ERROR, `StreamReset(remote=False)`); an HPACK bomb past twice
the limit, or any connection-level violation, ends the connection (GOAWAY with the
RFC's error code, then `ProtocolError`). After a GOAWAY either way, streams up to its
last stream id may still finish.

Layers: http2_endpoint.py (this API's shared half, queues), h2connection.py (frames,
stream ids, SETTINGS, windows), h2headers.py (message rules), h2frames.py (wire
layout), hpack_decoder.py / hpack_encoder.py (HPACK).
"""
from __future__ import annotations

from .events import (INTERNAL_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, Event, Headers,
                     RequestHead, ResponseHead)
from .h2connection import H2ConnectionError
from .h2frames import H2_PREFACE
from .h2headers import Malformed, request_parts, response_parts
from .http1_common import LocalProtocolError
from .http2_endpoint import _DROP, H2Endpoint, H2Stream, sanitize
from .limits import DEFAULT_HTTP2_SETTINGS, Http2Settings


def detect_h2_preface(data: bytes) -> bool | None:
    """h2c prior knowledge: True when ``data`` starts with the HTTP/2 connection
    preface, False when it cannot, None when it is a prefix (read more)."""
    n = min(len(data), len(H2_PREFACE))
    if data[:n] != H2_PREFACE[:n]:
        return False
    return True if n == len(H2_PREFACE) else None


class Http2ServerConnection(H2Endpoint):
    """Downstream HTTP/2 (h2c prior knowledge or ALPN h2). Responses via
    ``send(ResponseHead(stream_id, status, headers, end_stream=...))``."""

    _client_side = False

    def _on_new_stream(self, sid: int, fields: list, end_stream: bool, out: list[Event]) -> None:
        try:
            if self._decoder.malformed:
                raise Malformed("invalid characters in a field")
            req = request_parts(fields)
            cl = req.content_length
            if end_stream and cl:
                raise Malformed("the body is shorter than its content-length")
        except Malformed:
            self._stream_error(sid, PROTOCOL_ERROR, out, report=True)
            return
        if self._too_big(fields):
            self._stream_error(sid, INTERNAL_ERROR, out, report=True)
            return
        if len(self._streams) >= self.settings.max_concurrent_streams:
            self._stream_error(sid, REFUSED_STREAM, out, report=True)
            return
        st = self._open_stream(sid)
        st.remote_done = end_stream
        if cl is not None:
            st.body_left = cl
        method = req.method
        authority = req.authority
        if authority is None:
            authority = b""
            for name, value in req.headers:
                if name == b"host":
                    authority = value
                    break
        upgrade = None
        if method == b"CONNECT":
            upgrade = req.protocol or b"connect"
        path = req.path
        if path is None:
            path = authority if upgrade else b""
        out.append(RequestHead(sid, method, path, authority, req.headers, b"2", True, upgrade,
                               cl, False, req.expect_continue, req.scheme, end_stream))

    def _on_stream_headers(self, sid: int, st: H2Stream, fields: list, end_stream: bool,
                           out: list[Event]) -> None:
        self._on_trailers(sid, st, fields, end_stream, out)

    def _send_head(self, event: Event) -> None:
        if event.__class__ is not ResponseHead:
            raise TypeError(f"cannot send {type(event).__name__} on an HTTP/2 server connection")
        head: ResponseHead = event  # type: ignore[assignment]
        st = self._live(head.stream_id)
        if st is None:
            return
        block = sanitize(head.headers, [(b":status", b"%d" % head.status)])
        self._send_headers(head.stream_id, block, head.end_stream)
        if head.end_stream:
            self._local_end(head.stream_id, st)

    def send_response_head_and_body(self, stream_id: int, status: int, headers: Headers,
                                    body: bytes = b"") -> bytes:
        """A whole response (HEADERS + DATA as the windows allow)."""
        st = self._live(stream_id)
        if st is None:
            return self.data_to_send()
        block = [(b":status", b"%d" % status)]
        length = False
        for name, value in headers:  # sanitize(), and look for content-length
            if name in _DROP or name == b"te" and value.strip().lower() != b"trailers":
                continue
            if name == b"content-length":
                length = True
            block.append((name, value))
        if body and not length:
            block.append((b"content-length", b"%d" % len(body)))
        self._send_headers(stream_id, block, not body)
        if body:
            self.send_data(stream_id, body, True)
        else:
            self._local_end(stream_id, st)
        return self.data_to_send()


class Http2ClientConnection(H2Endpoint):
    """Upstream HTTP/2. The codec picks stream ids: `send_request` returns one
    (or ``send(RequestHead)`` with ``stream_id=next_stream_id()``)."""

    def _on_new_stream(self, sid: int, fields: list, end_stream: bool, out: list[Event]) -> None:
        # A server never opens a stream (push is disabled): the connection refuses the
        # HEADERS before this; kept so that rule holds even if that check moves.
        raise H2ConnectionError(PROTOCOL_ERROR, f"HEADERS opening stream {sid} (the server may not)")

    _client_side = True

    def __init__(self, settings: Http2Settings = DEFAULT_HTTP2_SETTINGS) -> None:
        super().__init__(settings)

    def next_stream_id(self) -> int:
        return self._next_sid

    @property
    def can_open_stream(self) -> bool:
        """Below the server's MAX_CONCURRENT_STREAMS, and no GOAWAY received."""
        if self._goaway_received is not None or self._closed or self._error is not None:
            return False
        if self._next_sid > 2**31 - 1:
            return False
        limit = self._peer_max_streams
        if len(self._streams) < limit:
            return True
        return sum(1 for st in self._streams.values()
                   if not (st.local_done and st.remote_done)) < limit

    def send_request(self, method: bytes, target: bytes, authority: bytes, headers: Headers,
                     scheme: bytes = b"http", end_stream: bool = False) -> int:
        """Open a stream with a request head; returns its id. Bytes: `data_to_send()`."""
        sid = self._next_sid
        self._send_head(RequestHead(sid, method, target, authority, headers,
                                    scheme=scheme, end_stream=end_stream))
        return sid

    def _send_head(self, event: Event) -> None:
        if event.__class__ is not RequestHead:
            raise TypeError(f"cannot send {type(event).__name__} on an HTTP/2 client connection")
        head: RequestHead = event  # type: ignore[assignment]
        sid = head.stream_id
        if head.upgrade is not None and head.method != b"CONNECT":
            raise LocalProtocolError("HTTP/1 upgrades are not carried over HTTP/2")
        if sid < self._next_sid or not sid & 1:
            raise LocalProtocolError(f"stream id {sid} is not a new client stream "
                                     f"(next_stream_id() is {self._next_sid})")
        if self._goaway_received is not None:
            raise LocalProtocolError("the server sent GOAWAY: open a new connection")
        if head.method == b"CONNECT":
            block = [(b":method", b"CONNECT"), (b":authority", head.authority)]
        else:
            block = [(b":method", head.method), (b":scheme", head.scheme or b"http"),
                     (b":authority", head.authority), (b":path", head.target)]
        self._next_sid = sid + 2
        if self._error is not None:
            return  # the connection is dead: the runtime has the ProtocolError
        st = self._open_stream(sid)
        st.head_done = False
        st.head_request = head.method == b"HEAD"
        self._send_headers(sid, sanitize(head.headers, block), head.end_stream)
        if head.end_stream:
            st.local_done = True

    def _on_stream_headers(self, sid: int, st: H2Stream, fields: list, end_stream: bool,
                           out: list[Event]) -> None:
        if st.head_done:
            self._on_trailers(sid, st, fields, end_stream, out)
            return
        try:
            if self._decoder.malformed:
                raise Malformed("invalid characters in a field")
            status, regular, cl = response_parts(fields)
            if status < 200:
                if status == 101 or end_stream:
                    raise Malformed(f"informational response {status}")
                return  # 1xx: the final response follows
            # a response to HEAD, or a 304, has no body whatever its content-length says
            body_left = -1 if cl is None or st.head_request or status == 304 else cl
            if end_stream and body_left > 0:
                raise Malformed("the body is shorter than its content-length")
        except Malformed:
            self._stream_error(sid, PROTOCOL_ERROR, out)
            return
        if self._too_big(fields):
            self._stream_error(sid, INTERNAL_ERROR, out)
            return
        st.head_done = True
        st.body_left = body_left
        out.append(ResponseHead(sid, status, regular, b"", b"2", True, cl, False, end_stream))
        if end_stream:
            self._remote_end(sid, st)


__all__ = ["H2_PREFACE", "Http2ClientConnection", "Http2ServerConnection",
           "detect_h2_preface"]
