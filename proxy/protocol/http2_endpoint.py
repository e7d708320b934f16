"""What the HTTP/2 server and client share (see http2.py for the contract): h2
setup with our settings, per-stream bookkeeping, flow control both ways, and the
translation of h2 events into codec events.

Stream states (per stream, tracked here for queued data and acknowledgements)::

    state        event                                    next
    OPEN         END_STREAM received                      HALF_CLOSED_REMOTE
    OPEN         END_STREAM sent (or queued and flushed)  HALF_CLOSED_LOCAL
    HALF_CLOSED  the other END_STREAM, all data acked     CLOSED (forgotten)
    any          RST_STREAM either way                    CLOSED (unacked bytes released)
"""
from __future__ import annotations

import abc

from collections import deque

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.events import (ConnectionTerminated, DataReceived, InformationalResponseReceived,
                       RemoteSettingsChanged, RequestReceived, ResponseReceived,
                       StreamEnded, TrailersReceived, WindowUpdated)
from h2.events import StreamReset as H2StreamReset
from h2.exceptions import NoSuchStreamError
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.settings import SettingCodes, Settings

from .events import (CANCEL, INTERNAL_ERROR, ConnectionClosed, Data, Event, GoAway,
                     Headers, ProtocolError, StreamReset, Trailers, WindowUpdate)
from .hpack_encoder import StatelessHpackEncoder
from .limits import DEFAULT_HTTP2_SETTINGS, Http2Settings

# Connection-specific headers HTTP/2 forbids (RFC 9113 section 8.2.2); host
# travels as :authority.
_DROP = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                   b"transfer-encoding", b"upgrade", b"host", b"http2-settings"})


class _LocalSettings(Settings):
    """Advertises MAX_CONCURRENT_STREAMS but lets this wrapper enforce it: h2
    itself would tear the whole connection down instead of refusing the stream."""

    @property
    def max_concurrent_streams(self) -> int:  # type: ignore[override]
        return 2**31 - 1


class H2Stream:
    __slots__ = ("queue", "queued", "pending_end", "pending_trailers", "unacked",
                 "local_done", "remote_done")

    def __init__(self) -> None:
        self.queue: deque[bytes] | None = None  # data waiting for window
        self.queued = 0                        # bytes in the queue
        self.pending_end = False               # END_STREAM after them
        self.pending_trailers: Headers | None = None
        self.unacked = 0                       # received, not yet acknowledged
        self.local_done = False
        self.remote_done = False


def sanitize(headers: Headers, out: Headers) -> Headers:
    for name, value in headers:
        if name in _DROP:
            continue
        if name == b"te" and value.strip().lower() != b"trailers":
            continue
        out.append((name, value))
    return out


class H2Endpoint(abc.ABC):
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
        conn.encoder = StatelessHpackEncoder()  # see hpack_encoder.py: no table search, no Huffman in Python
        conn.local_settings = _LocalSettings(client=self._client_side, initial_values=initial)
        conn.max_inbound_frame_size = settings.max_frame_size
        conn.decoder.max_header_list_size = hard_cap
        conn.initiate_connection()
        extra = settings.initial_connection_window_size - 65535
        if extra > 0:
            conn.increment_flow_control_window(extra)
        self._streams: dict[int, H2Stream] = {}
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
        self._dispatch(event)
        return self._conn.data_to_send()

    def _dispatch(self, event: Event) -> None:
        cls = event.__class__
        if cls is Data:
            self.send_data(event.stream_id, event.data, event.end_stream)  # type: ignore[attr-defined]
        elif cls is Trailers:
            self.send_trailers(event.stream_id, event.headers)  # type: ignore[attr-defined]
        elif cls is StreamReset:
            self.reset_stream(event.stream_id, event.error_code)  # type: ignore[attr-defined]
        else:
            try:
                self._send_head(event)
            except NoSuchStreamError:  # the peer reset it in the batch being handled
                self._forget(event.stream_id)  # type: ignore[attr-defined]

    def _live(self, stream_id: int) -> H2Stream | None:
        """The stream, if we may still send on it (not ended, reset or GOAWAY'd)."""
        if self._conn.state_machine.state is ConnectionState.CLOSED:
            return None
        st = self._streams.get(stream_id)
        return None if st is None or st.local_done else st

    def _rst(self, stream_id: int, error_code: int) -> None:
        """RST_STREAM, tolerating a stream h2 has closed already."""
        if self._conn.state_machine.state is not ConnectionState.CLOSED:
            try:
                self._conn.reset_stream(stream_id, error_code)
            except NoSuchStreamError:
                pass

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send what the windows allow now, queue the rest (see WindowUpdate).
        A stream that was reset meanwhile swallows the data: the runtime learns of
        the reset from a StreamReset event."""
        st = self._live(stream_id)
        if st is None:
            return
        if st.queued or st.queue:
            st.queue.append(data)  # type: ignore[union-attr]
            st.queued += len(data)
            st.pending_end = end_stream
            return
        try:
            rest = self._send_now(stream_id, data, end_stream)
        except NoSuchStreamError:
            self._forget(stream_id)
            return
        if rest:
            st.queue = deque((rest,))
            st.queued = len(rest)
            st.pending_end = end_stream
            self._blocked.add(stream_id)
        elif end_stream:
            self._local_end(stream_id, st)

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        st = self._live(stream_id)
        if st is None:
            return
        if st.queue:
            st.pending_trailers = headers
            return
        try:
            self._conn.send_headers(stream_id, sanitize(headers, []), end_stream=True)
        except NoSuchStreamError:
            self._forget(stream_id)
            return
        self._local_end(stream_id, st)

    def reset_stream(self, stream_id: int, error_code: int = CANCEL) -> None:
        if self._forget(stream_id) is not None:
            self._rst(stream_id, error_code)

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
        """Bytes `send_data` queued for this stream, waiting for window."""
        st = self._streams.get(stream_id)
        return st.queued if st is not None else 0

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

    def _send_now(self, stream_id: int, data: bytes, end_stream: bool) -> bytes:
        """Frame as much of ``data`` as the windows allow; returns the rest.
        END_STREAM rides on the last frame only if everything went out."""
        conn = self._conn
        size = len(data)
        if size == 0:
            if end_stream:
                conn.send_data(stream_id, b"", end_stream=True)
            return b""
        window = conn.local_flow_control_window(stream_id)
        if size <= window and size <= conn.max_outbound_frame_size:
            conn.send_data(stream_id, data, end_stream=end_stream)  # the common case
            return b""
        frame = conn.max_outbound_frame_size
        sent = 0
        while sent < size and window > 0:
            n = min(size - sent, window, frame)
            conn.send_data(stream_id, data[sent:sent + n],
                           end_stream=end_stream and sent + n == size)
            sent += n
            window -= n
        return data[sent:]

    def _flush(self, stream_ids: list[int] | set[int], events: list[Event]) -> None:
        """Window opened: send queued data (then END_STREAM or trailers)."""
        for stream_id in list(stream_ids):
            st = self._streams.get(stream_id)
            queue = st.queue if st is not None else None
            if st is None or not queue:
                self._blocked.discard(stream_id)
                continue
            before = st.queued
            try:
                while queue:
                    chunk = queue.popleft()
                    rest = self._send_now(stream_id, chunk, st.pending_end and not queue)
                    st.queued -= len(chunk) - len(rest)
                    if rest:
                        queue.appendleft(rest)
                        break
                if not queue and st.pending_trailers is not None:
                    trailers, st.pending_trailers = st.pending_trailers, None
                    self._conn.send_headers(stream_id, sanitize(trailers, []), end_stream=True)
                    st.pending_end = True
            except NoSuchStreamError:  # reset by the peer in this very batch
                self._forget(stream_id)
                continue
            if queue:
                if st.queued != before:
                    events.append(WindowUpdate(stream_id, st.queued))
                continue
            self._blocked.discard(stream_id)
            if st.pending_end:
                self._local_end(stream_id, st)
            events.append(WindowUpdate(stream_id, 0))

    def _local_end(self, stream_id: int, st: H2Stream) -> None:
        st.local_done = True
        if st.remote_done and st.unacked == 0:
            self._streams.pop(stream_id, None)

    def _remote_end(self, stream_id: int, st: H2Stream) -> None:
        st.remote_done = True
        if st.local_done and st.unacked == 0:
            self._streams.pop(stream_id, None)

    def _forget(self, stream_id: int) -> H2Stream | None:
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
                    self._rst(sid, INTERNAL_ERROR)
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

    @abc.abstractmethod
    def _on_head(self, ev: RequestReceived | ResponseReceived, out: list[Event]) -> None:
        """Turn a received header block into the side's head event (request or response)."""

    @abc.abstractmethod
    def _send_head(self, event: Event) -> None:
        """Send the side's head event (request or response) as a HEADERS frame."""

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
                if name == b"content-length" and value.isdigit():  # h2 checked it
                    cl = int(value)
                regular.append((name, value))
        if cookies:
            regular.append((b"cookie", b"; ".join(cookies)))
        return pseudo, regular, cl
