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

Stream states (per stream, tracked here for queued data and acknowledgements)::

    state        event                                 next
    OPEN         END_STREAM received                   HALF_CLOSED_REMOTE
    OPEN         END_STREAM sent (or queued and flushed)  HALF_CLOSED_LOCAL
    HALF_CLOSED  the other END_STREAM, all data acked  CLOSED (forgotten)
    any          RST_STREAM either way                 CLOSED (unacked bytes released)
"""
from __future__ import annotations

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (ConnectionTerminated, DataReceived, InformationalResponseReceived,
                       RemoteSettingsChanged, RequestReceived, ResponseReceived,
                       StreamEnded, TrailersReceived, WindowUpdated)
from h2.events import StreamReset as H2StreamReset
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.settings import SettingCodes, Settings

from .events import (INTERNAL_ERROR, REFUSED_STREAM, CANCEL, ConnectionClosed, Data,
                     Event, GoAway, Headers, ProtocolError, RequestHead, ResponseHead,
                     StreamReset, Trailers, WindowUpdate)
from .http1_common import LocalProtocolError
from .limits import DEFAULT_HTTP2_SETTINGS, Http2Settings

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Connection-specific headers HTTP/2 forbids (RFC 9113 section 8.2.2); host
# travels as :authority.
_DROP = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                   b"transfer-encoding", b"upgrade", b"host", b"http2-settings"})


def detect_h2_preface(data: bytes) -> bool | None:
    """h2c prior knowledge: True when ``data`` starts with the HTTP/2 connection
    preface, False when it cannot, None when it is a prefix (read more)."""
    n = min(len(data), len(H2_PREFACE))
    if data[:n] != H2_PREFACE[:n]:
        return False
    return True if n == len(H2_PREFACE) else None


class _LocalSettings(Settings):
    """Advertises MAX_CONCURRENT_STREAMS but lets this wrapper enforce it: h2
    itself would tear the whole connection down instead of refusing the stream."""

    @property
    def max_concurrent_streams(self) -> int:  # type: ignore[override]
        return 2**31 - 1


class _Stream:
    __slots__ = ("pending", "pending_end", "pending_trailers", "unacked",
                 "local_done", "remote_done")

    def __init__(self) -> None:
        self.pending = b""                     # bytes waiting for window
        self.pending_end = False               # END_STREAM after them
        self.pending_trailers: Headers | None = None
        self.unacked = 0                       # received, not yet acknowledged
        self.local_done = False
        self.remote_done = False


def _sanitize(headers: Headers, out: Headers) -> Headers:
    for name, value in headers:
        if name in _DROP:
            continue
        if name == b"te" and value.strip().lower() != b"trailers":
            continue
        out.append((name, value))
    return out


class _H2Endpoint:
    """What client and server share: settings, flow control, stream bookkeeping."""

    _client_side = False

    def __init__(self, settings: Http2Settings = DEFAULT_HTTP2_SETTINGS) -> None:
        self.settings = settings
        self._max_bytes = settings.max_headers_bytes
        self._max_count = settings.max_headers_count
        self._conn = conn = H2Connection(H2Configuration(
            client_side=self._client_side, header_encoding=None,
            validate_outbound_headers=False, normalize_outbound_headers=False))
        hard_cap = 2 * self._max_bytes + 32 * (self._max_count + 1)
        initial = {
            SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_stream_window_size,
            SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
            SettingCodes.HEADER_TABLE_SIZE: settings.hpack_table_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: hard_cap,
        }
        if self._client_side:
            initial[SettingCodes.ENABLE_PUSH] = 0
        conn.local_settings = _LocalSettings(client=self._client_side, initial_values=initial)
        conn.max_inbound_frame_size = settings.max_frame_size
        conn.decoder.max_header_list_size = hard_cap
        conn.initiate_connection()
        extra = settings.initial_connection_window_size - 65535
        if extra > 0:
            conn.increment_flow_control_window(extra)
        self._streams: dict[int, _Stream] = {}
        self._blocked: set[int] = set()  # streams with queued data
        self._closed = False
        self._error: ProtocolError | None = None

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} streams={len(self._streams)} "
                f"blocked={len(self._blocked)} closed={self._closed}>")

    # -- output -------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Bytes h2 queued (settings, acks, window updates, frames)."""
        return self._conn.data_to_send()

    def send(self, event: Event) -> bytes:
        """Send a head, Data, Trailers or StreamReset; returns the bytes to write."""
        cls = event.__class__
        if cls is Data:
            self.send_data(event.stream_id, event.data, event.end_stream)  # type: ignore[attr-defined]
        elif cls is Trailers:
            self.send_trailers(event.stream_id, event.headers)  # type: ignore[attr-defined]
        elif cls is StreamReset:
            self.reset_stream(event.stream_id, event.error_code)  # type: ignore[attr-defined]
        else:
            self._send_head(event)
        return self._conn.data_to_send()

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send what the windows allow now, queue the rest (see WindowUpdate)."""
        st = self._streams.get(stream_id)
        if st is None or st.local_done:
            return  # reset meanwhile: the runtime learns it from StreamReset
        if st.pending:
            st.pending += data
            st.pending_end = end_stream
            return
        self._write(stream_id, st, data, end_stream)

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        st = self._streams.get(stream_id)
        if st is None or st.local_done:
            return
        if st.pending:
            st.pending_trailers = headers
            return
        self._conn.send_headers(stream_id, _sanitize(headers, []), end_stream=True)
        self._local_end(stream_id, st)

    def reset_stream(self, stream_id: int, error_code: int = CANCEL) -> None:
        if self._forget(stream_id) is not None:
            self._conn.reset_stream(stream_id, error_code)

    def close(self, error_code: int = 0, last_stream_id: int | None = None) -> bytes:
        """GOAWAY; returns the bytes to write before closing the socket."""
        self._conn.close_connection(error_code, last_stream_id=last_stream_id)
        return self._conn.data_to_send()

    def local_flow_control_window(self, stream_id: int) -> int:
        """How many bytes `send_data` can put on the wire now for this stream."""
        if stream_id not in self._streams:
            return 0
        return self._conn.local_flow_control_window(stream_id)

    def pending_send_bytes(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return len(st.pending) if st is not None else 0

    def acknowledge_received_data(self, stream_id: int, n: int) -> None:
        """The runtime forwarded ``n`` bytes of this stream: reopen the windows."""
        st = self._streams.get(stream_id)
        if st is None or n <= 0:
            return
        n = min(n, st.unacked)
        st.unacked -= n
        self._conn.acknowledge_received_data(n, stream_id)
        if st.unacked == 0 and st.local_done and st.remote_done:
            del self._streams[stream_id]

    def _write(self, stream_id: int, st: _Stream, data: bytes, end_stream: bool) -> None:
        conn = self._conn
        size = len(data)
        if size == 0:
            if end_stream:
                conn.send_data(stream_id, b"", end_stream=True)
                self._local_end(stream_id, st)
            return
        window = conn.local_flow_control_window(stream_id)
        frame = conn.max_outbound_frame_size
        sent = 0
        while sent < size and window > 0:
            n = min(size - sent, window, frame)
            last = sent + n == size
            conn.send_data(stream_id, data[sent:sent + n] if n < size else data,
                           end_stream=end_stream and last)
            sent += n
            window -= n
        if sent < size:
            st.pending = data[sent:]
            st.pending_end = end_stream
            self._blocked.add(stream_id)
        elif end_stream:
            self._local_end(stream_id, st)

    def _flush(self, stream_ids: list[int] | set[int], events: list[Event]) -> None:
        for stream_id in list(stream_ids):
            st = self._streams.get(stream_id)
            if st is None or not st.pending:
                self._blocked.discard(stream_id)
                continue
            before = len(st.pending)
            data, st.pending = st.pending, b""
            self._blocked.discard(stream_id)
            self._write(stream_id, st, data, st.pending_end)
            if st.pending and len(st.pending) == before:
                continue  # no progress
            if not st.pending and st.pending_trailers is not None:
                trailers, st.pending_trailers = st.pending_trailers, None
                self._conn.send_headers(stream_id, _sanitize(trailers, []), end_stream=True)
                self._local_end(stream_id, st)
            events.append(WindowUpdate(stream_id, len(st.pending)))

    def _local_end(self, stream_id: int, st: _Stream) -> None:
        st.local_done = True
        if st.remote_done and st.unacked == 0:
            self._streams.pop(stream_id, None)

    def _remote_end(self, stream_id: int, st: _Stream) -> None:
        st.remote_done = True
        if st.local_done and st.unacked == 0:
            self._streams.pop(stream_id, None)

    def _forget(self, stream_id: int) -> _Stream | None:
        st = self._streams.pop(stream_id, None)
        self._blocked.discard(stream_id)
        if st is not None and st.unacked:
            self._conn.acknowledge_received_data(st.unacked, stream_id)
        return st

    def _headers_too_big(self, headers: Headers) -> bool:
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
        return size > self._max_bytes or len(headers) > self._max_count

    # -- input --------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer (``b""`` = peer closed); returns events. Then
        write `data_to_send()`."""
        if self._closed or self._error is not None:
            return []
        if not data:
            self._closed = True
            events: list[Event] = [StreamReset(sid, CANCEL, True) for sid, st in
                                   self._streams.items() if not (st.remote_done and st.local_done)]
            self._streams.clear()
            events.append(ConnectionClosed())
            return events
        try:
            h2_events = self._conn.receive_data(data)
        except H2ProtocolError as exc:
            self._error = ProtocolError(502 if self._client_side else 400,
                                        f"http/2 protocol error: {exc}", True, None)
            return [self._error]
        conn = self._conn
        out: list[Event] = []
        for ev in h2_events:
            cls = ev.__class__
            if cls is DataReceived:
                sid = ev.stream_id
                body = ev.data
                padding = ev.flow_controlled_length - len(body)
                if padding:
                    conn.acknowledge_received_data(padding, sid)
                st = self._streams.get(sid)
                if st is None:  # a stream we reset or refused
                    if body:
                        conn.acknowledge_received_data(len(body), sid)
                    continue
                st.unacked += len(body)
                end = ev.stream_ended is not None
                out.append(Data(sid, body, end))
                if end:
                    self._remote_end(sid, st)
            elif cls is RequestReceived or cls is ResponseReceived:
                self._on_head(ev, out)
            elif cls is TrailersReceived:
                sid = ev.stream_id
                st = self._streams.get(sid)
                if st is None:
                    continue
                if self._headers_too_big(ev.headers):
                    self._forget(sid)
                    conn.reset_stream(sid, INTERNAL_ERROR)
                    out.append(StreamReset(sid, INTERNAL_ERROR, False))
                    continue
                out.append(Trailers(sid, list(ev.headers)))
                self._remote_end(sid, st)
            elif cls is StreamEnded or cls is InformationalResponseReceived:
                continue  # END_STREAM rides on the Data/head event; 1xx are skipped
            elif cls is H2StreamReset:
                if self._forget(ev.stream_id) is not None:
                    out.append(StreamReset(ev.stream_id, int(ev.error_code), True))
            elif cls is WindowUpdated:
                if self._blocked:
                    sid = ev.stream_id
                    self._flush(self._blocked if sid == 0 else [sid], out)
            elif cls is RemoteSettingsChanged:
                if self._blocked and (SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings
                                      or SettingCodes.MAX_FRAME_SIZE in ev.changed_settings):
                    self._flush(self._blocked, out)
            elif cls is ConnectionTerminated:
                out.append(GoAway(ev.last_stream_id or 0, int(ev.error_code)))
        return out

    def _on_head(self, ev: RequestReceived | ResponseReceived, out: list[Event]) -> None:
        raise NotImplementedError

    def _send_head(self, event: Event) -> None:
        raise NotImplementedError

    @staticmethod
    def _split(headers: Headers) -> tuple[dict[bytes, bytes], Headers, int | None]:
        """Pseudo-headers, regular headers (cookies joined), content-length."""
        pseudo: dict[bytes, bytes] = {}
        regular: Headers = []
        cookies: list[bytes] = []
        cl = None
        for name, value in headers:
            if name[:1] == b":":
                pseudo[name] = value
            elif name == b"cookie":
                cookies.append(value)
            else:
                if name == b"content-length":
                    cl = int(value)
                regular.append((name, value))
        if cookies:
            regular.append((b"cookie", b"; ".join(cookies)))
        return pseudo, regular, cl


class Http2ServerConnection(_H2Endpoint):
    """Downstream HTTP/2 (h2c prior knowledge or ALPN h2). Responses via
    ``send(ResponseHead(stream_id, status, headers, end_stream=...))``."""

    _client_side = False

    def _on_head(self, ev: RequestReceived | ResponseReceived, out: list[Event]) -> None:
        sid = ev.stream_id
        conn = self._conn
        if self._headers_too_big(ev.headers):
            conn.reset_stream(sid, INTERNAL_ERROR)
            out.append(StreamReset(sid, INTERNAL_ERROR, False))
            return
        if len(self._streams) >= self.settings.max_concurrent_streams:
            conn.reset_stream(sid, REFUSED_STREAM)
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
        st = self._streams[sid] = _Stream()
        st.remote_done = end
        expect = any(n == b"expect" and v.lower() == b"100-continue" for n, v in regular)
        out.append(RequestHead(
            sid, method, pseudo.get(b":path", authority if upgrade else b""), authority,
            regular, b"2", True, upgrade, cl, False, expect, pseudo.get(b":scheme"), end))

    def _send_head(self, event: Event) -> None:
        if event.__class__ is not ResponseHead:
            raise TypeError(f"cannot send {type(event).__name__} on an HTTP/2 server connection")
        head: ResponseHead = event  # type: ignore[assignment]
        st = self._streams.get(head.stream_id)
        if st is None or st.local_done:
            return
        block = _sanitize(head.headers, [(b":status", b"%d" % head.status)])
        self._conn.send_headers(head.stream_id, block, end_stream=head.end_stream)
        if head.end_stream:
            self._local_end(head.stream_id, st)

    def send_response_head_and_body(self, stream_id: int, status: int, headers: Headers,
                                    body: bytes = b"") -> bytes:
        """A whole response (HEADERS + DATA as the windows allow)."""
        if body and not any(n == b"content-length" for n, _ in headers):
            headers = [*headers, (b"content-length", b"%d" % len(body))]
        self._send_head(ResponseHead(stream_id, status, headers, end_stream=not body))
        if body:
            self.send_data(stream_id, body, True)
        return self._conn.data_to_send()


class Http2ClientConnection(_H2Endpoint):
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
        st = self._streams[head.stream_id] = _Stream()
        self._conn.send_headers(head.stream_id, _sanitize(head.headers, block),
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
            self._conn.reset_stream(sid, INTERNAL_ERROR)
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
