"""What the HTTP/2 server and client share (see http2.py for the contract): the
public send/receive API over our HTTP/2 connection (h2connection.py), per-stream
queues for data waiting on flow control, and the message rules both sides apply
to received header blocks (trailers, limits, malformed messages).

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

from .events import (CANCEL, INTERNAL_ERROR, PROTOCOL_ERROR, ConnectionClosed, Data, Event,
                     Headers, ProtocolError, StreamReset, Trailers, WindowUpdate)
from .h2connection import H2Connection, H2ConnectionError, H2Stream
from .h2frames import goaway_frame, rst_stream_frame
from .h2headers import Malformed, check_trailers
from .limits import DEFAULT_HTTP2_SETTINGS, Http2Settings

# Connection-specific headers HTTP/2 forbids (RFC 9113 section 8.2.2); host
# travels as :authority.
_DROP = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                   b"transfer-encoding", b"upgrade", b"host", b"http2-settings"})

__all__ = ["H2Endpoint", "H2Stream", "sanitize"]


def sanitize(headers: Headers, out: Headers) -> Headers:
    for name, value in headers:
        if name in _DROP:
            continue
        if name == b"te" and value.strip().lower() != b"trailers":
            continue
        out.append((name, value))
    return out


class H2Endpoint(H2Connection, abc.ABC):
    """What client and server share: settings, flow control, stream bookkeeping."""

    _client_side = False

    def __init__(self, settings: Http2Settings = DEFAULT_HTTP2_SETTINGS) -> None:
        super().__init__(settings)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} streams={len(self._streams)} "
                f"blocked={len(self._blocked)} closed={self._closed}>")

    # -- output -------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Bytes queued (settings, acks, window updates, frames)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def send(self, event: Event) -> bytes:
        """Send a head, Data, Trailers or StreamReset; returns the bytes to write."""
        self._dispatch(event)
        return self.data_to_send()

    def _dispatch(self, event: Event) -> None:
        cls = event.__class__
        if cls is Data:
            self.send_data(event.stream_id, event.data, event.end_stream)  # type: ignore[attr-defined]
        elif cls is Trailers:
            self.send_trailers(event.stream_id, event.headers)  # type: ignore[attr-defined]
        elif cls is StreamReset:
            self.reset_stream(event.stream_id, event.error_code)  # type: ignore[attr-defined]
        else:
            self._send_head(event)

    def _live(self, stream_id: int) -> H2Stream | None:
        """The stream, if we may still send on it (not ended, reset or GOAWAY'd)."""
        if self._error is not None:
            return None
        st = self._streams.get(stream_id)
        return None if st is None or st.local_done else st

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send what the windows allow now, queue the rest (see WindowUpdate).
        A stream that was reset meanwhile swallows the data: the runtime learns of
        the reset from a StreamReset event."""
        st = self._live(stream_id)
        if st is None:
            return
        if st.queue:
            st.queue.append(data)
            st.queued += len(data)
            st.pending_end = end_stream
            return
        rest = self._send_now(stream_id, st, data, end_stream)
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
        self._send_headers(stream_id, sanitize(headers, []), True)
        self._local_end(stream_id, st)

    def reset_stream(self, stream_id: int, error_code: int = CANCEL) -> None:
        if self._forget(stream_id) is not None and self._error is None:
            self._out.append(rst_stream_frame(stream_id, error_code))

    def close(self, error_code: int = 0, last_stream_id: int | None = None) -> bytes:
        """GOAWAY; returns the bytes to write before closing the socket. Streams up to
        ``last_stream_id`` (default: the last the peer opened) may still finish."""
        if self._error is None:
            last = self._last_peer_sid if last_stream_id is None else last_stream_id
            sent = self._goaway_sent
            self._goaway_sent = last if sent is None else min(sent, last)
            self._out.append(goaway_frame(last, error_code))
        return self.data_to_send()

    def local_flow_control_window(self, stream_id: int) -> int:
        """How many bytes `send_data` can put on the wire now for this stream."""
        st = self._streams.get(stream_id)
        if st is None:
            return 0
        return min(self._conn_send, st.send_window)

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
        self._give_back(stream_id, st, n)
        if st.unacked == 0 and st.local_done and st.remote_done:
            self._close_stream(stream_id)

    def _on_window_opened(self, stream_ids, events: list[Event]) -> None:
        """Window opened: send queued data (then END_STREAM or trailers)."""
        for stream_id in list(stream_ids):
            st = self._streams.get(stream_id)
            queue = st.queue if st is not None else None
            if st is None or not queue:
                self._blocked.discard(stream_id)
                continue
            before = st.queued
            while queue:
                chunk = queue.popleft()
                rest = self._send_now(stream_id, st, chunk, st.pending_end and not queue)
                st.queued -= len(chunk) - len(rest)
                if rest:
                    queue.appendleft(rest)
                    break
            if not queue and st.pending_trailers is not None:
                trailers, st.pending_trailers = st.pending_trailers, None
                self._send_headers(stream_id, sanitize(trailers, []), True)
                st.pending_end = True
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
            self._close_stream(stream_id)

    def _too_big(self, fields: list) -> bool:
        """Over max_headers_kb / max_headers_count (the decoder summed the sizes)."""
        return self._decoder.list_size > self._max_bytes or len(fields) > self._max_count

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
            self._blocked.clear()
            events.append(ConnectionClosed())
            return events
        out: list[Event] = []
        try:
            self._receive(data, out)
        except H2ConnectionError as exc:
            self._out.append(goaway_frame(self._last_peer_sid, exc.code))
            self._error = ProtocolError(502 if self._client_side else 400,
                                        f"http/2 protocol error: {exc}", True, None)
            return [self._error]
        return out

    def _on_trailers(self, sid: int, st: H2Stream, fields: list, end_stream: bool,
                     out: list[Event]) -> None:
        """A header block after the head: trailers, which must end the stream."""
        try:
            if not end_stream:
                raise Malformed("trailers without END_STREAM")
            if self._decoder.malformed:
                raise Malformed("invalid characters in a field")
            check_trailers(fields)
            if st.body_left > 0:
                raise Malformed("the body is shorter than its content-length")
        except Malformed:
            self._stream_error(sid, PROTOCOL_ERROR, out)
            return
        if self._too_big(fields):
            self._stream_error(sid, INTERNAL_ERROR, out)
            return
        out.append(Trailers(sid, fields))
        self._remote_end(sid, st)

    @abc.abstractmethod
    def _send_head(self, event: Event) -> None:
        """Send the side's head event (request or response) as a HEADERS frame."""

