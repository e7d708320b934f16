"""HTTP/2 over the `h2` library, speaking the same events as the HTTP/1.1 codecs.

``receive_data(bytes) -> events``; ``send(event) -> bytes``; bytes h2 produces on
its own (SETTINGS/PING acks, WINDOW_UPDATE, GOAWAY) come out of `data_to_send()`.
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
(REFUSED_STREAM); an HPACK bomb past twice the limit, or any frame-level violation,
ends the connection (GOAWAY, then `ProtocolError`).

The machinery both sides share (settings, flow control, stream states) is in
http2_endpoint.py.
"""
from __future__ import annotations

from h2.events import RequestReceived, ResponseReceived

from .events import (INTERNAL_ERROR, REFUSED_STREAM, Event, GoAway, Headers,
                     RequestHead, ResponseHead, StreamReset)
from .http1_common import LocalProtocolError
from .http2_endpoint import H2Endpoint, H2Stream, sanitize
from .limits import DEFAULT_HTTP2_SETTINGS, Http2Settings

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


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

    def _on_head(self, ev: RequestReceived | ResponseReceived, out: list[Event]) -> None:
        sid = ev.stream_id
        if self._headers_too_big(ev.headers):
            self._rst(sid, INTERNAL_ERROR)
            out.append(StreamReset(sid, INTERNAL_ERROR, False))
            return
        if len(self._streams) >= self.settings.max_concurrent_streams:
            self._rst(sid, REFUSED_STREAM)
            out.append(StreamReset(sid, REFUSED_STREAM, False))
            return
        pseudo, regular, cl = self._split(ev.headers)
        method = pseudo.get(b":method", b"")
        authority = pseudo.get(b":authority")
        if authority is None:
            for name, value in regular:
                if name == b"host":
                    authority = value
                    break
            else:
                authority = b""
        upgrade = None
        if method == b"CONNECT":
            upgrade = pseudo.get(b":protocol", b"connect")
        end = ev.stream_ended is not None
        st = self._streams[sid] = H2Stream()
        st.remote_done = end
        expect = any(n == b"expect" and v.lower() == b"100-continue" for n, v in regular)
        out.append(RequestHead(
            sid, method, pseudo.get(b":path", authority if upgrade else b""), authority,
            regular, b"2", True, upgrade, cl, False, expect, pseudo.get(b":scheme"), end))

    def _send_head(self, event: Event) -> None:
        if event.__class__ is not ResponseHead:
            raise TypeError(f"cannot send {type(event).__name__} on an HTTP/2 server connection")
        head: ResponseHead = event  # type: ignore[assignment]
        st = self._live(head.stream_id)
        if st is None:
            return
        block = sanitize(head.headers, [(b":status", b"%d" % head.status)])
        self._conn.send_headers(head.stream_id, block, end_stream=head.end_stream)
        if head.end_stream:
            self._local_end(head.stream_id, st)

    def send_response_head_and_body(self, stream_id: int, status: int, headers: Headers,
                                    body: bytes = b"") -> bytes:
        """A whole response (HEADERS + DATA as the windows allow)."""
        if body and not any(n == b"content-length" for n, _ in headers):
            headers = [*headers, (b"content-length", b"%d" % len(body))]
        self._dispatch(ResponseHead(stream_id, status, headers, end_stream=not body))
        if body:
            self.send_data(stream_id, body, True)
        return self._conn.data_to_send()


class Http2ClientConnection(H2Endpoint):
    """Upstream HTTP/2. The codec picks stream ids: `send_request` returns one
    (or ``send(RequestHead)`` with ``stream_id=next_stream_id()``)."""

    _client_side = True

    def __init__(self, settings: Http2Settings = DEFAULT_HTTP2_SETTINGS) -> None:
        super().__init__(settings)
        self._goaway = False

    def next_stream_id(self) -> int:
        return self._conn.get_next_available_stream_id()

    @property
    def can_open_stream(self) -> bool:
        """Below the server's MAX_CONCURRENT_STREAMS, and no GOAWAY received."""
        conn = self._conn
        return (not self._goaway and not self._closed and self._error is None
                and conn.open_outbound_streams < conn.remote_settings.max_concurrent_streams)

    def receive_data(self, data: bytes) -> list[Event]:
        events = super().receive_data(data)
        if any(e.__class__ is GoAway for e in events):
            self._goaway = True
        return events

    def send_request(self, method: bytes, target: bytes, authority: bytes, headers: Headers,
                     scheme: bytes = b"http", end_stream: bool = False) -> int:
        """Open a stream with a request head; returns its id. Bytes: `data_to_send()`."""
        sid = self._conn.get_next_available_stream_id()
        self._send_head(RequestHead(sid, method, target, authority, headers,
                                    scheme=scheme, end_stream=end_stream))
        return sid

    def _send_head(self, event: Event) -> None:
        if event.__class__ is not RequestHead:
            raise TypeError(f"cannot send {type(event).__name__} on an HTTP/2 client connection")
        head: RequestHead = event  # type: ignore[assignment]
        if head.upgrade is not None and head.method != b"CONNECT":
            raise LocalProtocolError("HTTP/1 upgrades are not carried over HTTP/2")
        if head.method == b"CONNECT":
            block = [(b":method", b"CONNECT"), (b":authority", head.authority)]
        else:
            block = [(b":method", head.method), (b":scheme", head.scheme or b"http"),
                     (b":authority", head.authority), (b":path", head.target)]
        st = self._streams[head.stream_id] = H2Stream()
        self._conn.send_headers(head.stream_id, sanitize(head.headers, block),
                                end_stream=head.end_stream)
        if head.end_stream:
            st.local_done = True

    def _on_head(self, ev: RequestReceived | ResponseReceived, out: list[Event]) -> None:
        sid = ev.stream_id
        st = self._streams.get(sid)
        if st is None:
            return
        if self._headers_too_big(ev.headers):
            self._forget(sid)
            self._rst(sid, INTERNAL_ERROR)
            out.append(StreamReset(sid, INTERNAL_ERROR, False))
            return
        pseudo, regular, cl = self._split(ev.headers)
        end = ev.stream_ended is not None
        out.append(ResponseHead(sid, int(pseudo.get(b":status", b"0")), regular, b"", b"2",
                                True, cl, False, end))
        if end:
            self._remote_end(sid, st)


__all__ = ["H2_PREFACE", "Http2ClientConnection", "Http2ServerConnection",
           "detect_h2_preface"]
