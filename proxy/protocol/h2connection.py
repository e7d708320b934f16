"""The HTTP/2 connection state machine (RFC 9113), sans-IO: frames in, codec events
and frames out. http2_endpoint.py builds the codec on it; this layer knows frames,
stream ids, SETTINGS and flow-control windows, not HTTP messages.

Contract for subclasses: a complete header block is decoded here (always, so the
HPACK state stays in step) and handed to `_on_new_stream` (a peer-opened stream) or
`_on_stream_headers` (a stream we track); `_on_window_opened` runs when the peer's
windows grow. A connection error raises `H2ConnectionError` out of `_receive`; a
stream error is `_stream_error` (RST_STREAM, then `StreamReset(remote=False)`).

Frames on a stream we do not track (section 5.1; the last 1024 closed ids are
remembered, an older one counts as never opened):

    stream id                                   DATA / HEADERS          RST_STREAM, WINDOW_UPDATE
    idle (above every id used so far)           PROTOCOL_ERROR          PROTOCOL_ERROR
    we reset it, or it is above our GOAWAY      ignored                 ignored
    closed (END_STREAM both ways, peer's RST)   STREAM_CLOSED           ignored
    skipped (a higher id was opened first)      PROTOCOL_ERROR          ignored
    (connection errors; a tracked stream the peer already ended gets a STREAM_CLOSED
    stream error instead)
"""
from __future__ import annotations

import abc
from collections import deque

from .events import (ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, PROTOCOL_ERROR, STREAM_CLOSED, Data,
                     Event, GoAway, StreamReset)
from .h2frames import (ACK, COMPRESSION_ERROR, CONTINUATION, DATA, DEFAULT_MAX_FRAME,
                       DEFAULT_WINDOW, ENABLE_CONNECT_PROTOCOL, ENABLE_PUSH, END_HEADERS,
                       END_STREAM, FRAME_HEADER, FRAME_SIZE_ERROR, H2_PREFACE, HEADER_TABLE_SIZE,
                       HEADERS, INITIAL_WINDOW_SIZE, MAX_CONCURRENT_STREAMS, MAX_FRAME_LIMIT,
                       MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE, MAX_WINDOW, PADDED, PRIORITY_FLAG,
                       SETTING, SETTINGS, SETTINGS_ACK_FRAME, U32, frame_header, headers_frames,
                       ping_frame, rst_stream_frame, settings_frame, window_update_frame)
from .hpack_decoder import HeaderListTooLarge, HpackDecoder, HpackError
from .hpack_encoder import StatelessHpackEncoder
from .limits import Http2Settings

_IDLE, _IGNORE, _CLOSED, _SKIPPED = 0, 1, 2, 3
_RECENT = 1024  # how many closed stream ids are remembered (with how they closed)


class H2ConnectionError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class H2Stream:
    """One stream: flow-control windows, message checks, and the endpoint's queue."""

    __slots__ = ("queue", "queued", "pending_end", "pending_trailers", "unacked",
                 "local_done", "remote_done", "send_window", "recv_window", "credit",
                 "head_done", "body_left", "head_request")

    def __init__(self, send_window: int = DEFAULT_WINDOW, recv_window: int = DEFAULT_WINDOW) -> None:
        self.queue: deque[bytes] | None = None  # data waiting for window
        self.queued = 0                        # bytes in the queue
        self.pending_end = False               # END_STREAM after them
        self.pending_trailers = None           # trailers after them
        self.unacked = 0                       # received, not yet acknowledged
        self.local_done = False
        self.remote_done = False
        self.send_window = send_window         # what the peer lets us send
        self.recv_window = recv_window         # what we let the peer send
        self.credit = 0                        # acknowledged, not yet given back
        self.head_done = True                  # the final head was received (client: set False)
        self.body_left = -1                    # content-length minus DATA so far (-1: unchecked)
        self.head_request = False              # client: a HEAD request (its response has no body)


class H2Connection(abc.ABC):
    _client_side = False

    def __init__(self, settings: Http2Settings) -> None:
        self.settings = settings
        self._max_bytes = settings.max_headers_bytes
        self._max_count = settings.max_headers_count
        # A header list past this ends the connection (an HPACK bomb); below it and above
        # the limits, the stream is reset (see http2.py).
        hard_cap = 2 * self._max_bytes + 32 * (self._max_count + 1)
        self._decoder = HpackDecoder(max(4096, settings.hpack_table_size), hard_cap)
        self._encoder = StatelessHpackEncoder()  # see hpack_encoder.py
        self._max_block = 2 * hard_cap  # compressed header block (HEADERS + CONTINUATION)
        self._max_frame = min(MAX_FRAME_LIMIT, max(DEFAULT_MAX_FRAME, settings.max_frame_size))
        self._stream_window = min(MAX_WINDOW, settings.initial_stream_window_size)
        local = [(HEADER_TABLE_SIZE, settings.hpack_table_size),
                 (MAX_CONCURRENT_STREAMS, settings.max_concurrent_streams),
                 (INITIAL_WINDOW_SIZE, self._stream_window),
                 (MAX_FRAME_SIZE, self._max_frame),
                 (MAX_HEADER_LIST_SIZE, hard_cap)]
        if self._client_side:
            local.insert(1, (ENABLE_PUSH, 0))
        out = [H2_PREFACE] if self._client_side else []
        out.append(settings_frame(local))
        conn_window = min(MAX_WINDOW, max(DEFAULT_WINDOW, settings.initial_connection_window_size))
        if conn_window > DEFAULT_WINDOW:
            out.append(window_update_frame(0, conn_window - DEFAULT_WINDOW))
        self._out: list[bytes] = out
        self._streams: dict[int, H2Stream] = {}
        self._blocked: set[int] = set()  # streams with queued data
        self._closed = False  # the peer closed (end of input)
        self._error = None    # the ProtocolError that ended the connection
        # input framing
        self._pending = bytearray()  # an incomplete frame
        self._need = 0               # bytes _pending must reach before parsing resumes
        self._preface_left = 0 if self._client_side else len(H2_PREFACE)
        self._got_settings = False   # the peer's first frame must be SETTINGS
        self._hb_sid = 0             # a header block awaiting CONTINUATION
        self._hb_parts: list[bytes] = []
        self._hb_flags = 0
        self._hb_size = 0
        # stream ids
        self._last_peer_sid = 0
        self._next_sid = 1 if self._client_side else 2
        self._recent: dict[int, int] = {}  # closed stream id -> _IGNORE or _CLOSED
        self._goaway_sent: int | None = None
        self._goaway_received: int | None = None
        # flow control
        self._conn_send = DEFAULT_WINDOW
        self._conn_recv = conn_window
        self._conn_credit = 0
        self._conn_threshold = conn_window // 2
        self._stream_threshold = max(1, self._stream_window // 2)
        self._recv_initial = DEFAULT_WINDOW  # ours, once the peer acknowledged our SETTINGS
        self._settings_acked = False
        self._peer_initial = DEFAULT_WINDOW
        self._peer_max_frame = DEFAULT_MAX_FRAME
        self._peer_max_streams = 2**32 - 1

    # -- hooks (the endpoint implements them: http2_endpoint.py, http2.py) -------------
    @abc.abstractmethod
    def _on_new_stream(self, sid: int, fields: list, end_stream: bool, out: list[Event]) -> None:
        """The peer opened stream ``sid`` with this decoded header block."""

    @abc.abstractmethod
    def _on_stream_headers(self, sid: int, st: H2Stream, fields: list, end_stream: bool,
                           out: list[Event]) -> None:
        """A header block on a stream we track (a response head, 1xx, or trailers)."""

    @abc.abstractmethod
    def _on_window_opened(self, stream_ids, out: list[Event]) -> None:
        """The peer's windows grew for these streams (or all blocked ones): send what waits."""

    # -- streams -----------------------------------------------------------------------
    def _open_stream(self, sid: int) -> H2Stream:
        st = self._streams[sid] = H2Stream(self._peer_initial, self._recv_initial)
        return st

    def _forget(self, sid: int, kind: int = _IGNORE) -> H2Stream | None:
        """Drop a stream (reset, or GOAWAY'd: late frames are ignored, unless ``kind``
        is _CLOSED); bytes it received and nobody acknowledged go back to the
        connection window."""
        st = self._streams.pop(sid, None)
        self._blocked.discard(sid)
        self._remember(sid, kind)
        if st is not None and st.unacked:
            self._give_back(sid, None, st.unacked)
        return st

    def _close_stream(self, sid: int) -> None:
        """Both sides ended the stream and everything received was acknowledged."""
        self._streams.pop(sid, None)
        self._remember(sid, _CLOSED)

    def _remember(self, sid: int, kind: int) -> None:
        recent = self._recent
        recent[sid] = kind
        if len(recent) > _RECENT:
            del recent[next(iter(recent))]

    def _stream_error(self, sid: int, code: int, out: list[Event], report: bool = False) -> None:
        """RST_STREAM ``code``; a StreamReset(remote=False) if the stream was known (or
        ``report``: a stream the peer is opening)."""
        st = self._forget(sid)
        self._out.append(rst_stream_frame(sid, code))
        if st is not None or report:
            out.append(StreamReset(sid, code, False))

    def _untracked(self, sid: int) -> int:
        """_IDLE, _IGNORE, _CLOSED or _SKIPPED for a stream id not in ``_streams``."""
        kind = self._recent.get(sid)
        if kind is not None:
            return kind
        if (sid & 1) == (0 if self._client_side else 1):  # the peer's streams
            return _IDLE if sid > self._last_peer_sid else _SKIPPED
        return _IDLE if sid >= self._next_sid else _SKIPPED

    # -- flow control ------------------------------------------------------------------
    def _give_back(self, sid: int, st: H2Stream | None, n: int) -> None:
        """``n`` received bytes are consumed: reopen the windows, a WINDOW_UPDATE once
        half a window's worth has been consumed."""
        credit = self._conn_credit + n
        if credit >= self._conn_threshold:
            self._out.append(window_update_frame(0, credit))
            self._conn_recv += credit
            credit = 0
        self._conn_credit = credit
        if st is not None and not st.remote_done:
            credit = st.credit + n
            if credit >= self._stream_threshold:
                self._out.append(window_update_frame(sid, credit))
                st.recv_window += credit
                credit = 0
            st.credit = credit

    def _send_now(self, sid: int, st: H2Stream, data: bytes, end_stream: bool) -> bytes:
        """DATA frames for as much of ``data`` as the windows allow; returns the rest.
        END_STREAM rides on the last frame only if everything went out."""
        size = len(data)
        out = self._out
        if size == 0:
            if end_stream:
                out.append(frame_header(0, DATA, END_STREAM, sid))
            return b""
        if data.__class__ is not bytes:
            data = bytes(data)
        window = min(self._conn_send, st.send_window)
        frame = self._peer_max_frame
        if size <= window and size <= frame:  # the common case
            out.append(frame_header(size, DATA, END_STREAM if end_stream else 0, sid))
            out.append(data)
            self._conn_send -= size
            st.send_window -= size
            return b""
        sent = 0
        while sent < size and window > 0:
            n = min(size - sent, window, frame)
            last = end_stream and sent + n == size
            out.append(frame_header(n, DATA, END_STREAM if last else 0, sid))
            out.append(data[sent:sent + n])
            sent += n
            window -= n
        self._conn_send -= sent
        st.send_window -= sent
        return data[sent:]

    def _send_headers(self, sid: int, fields: list, end_stream: bool) -> None:
        self._out.append(headers_frames(sid, self._encoder.encode(fields), end_stream,
                                        self._peer_max_frame))

    # -- input -------------------------------------------------------------------------
    def _receive(self, data: bytes, out: list[Event]) -> None:
        if data.__class__ is not bytes:
            data = bytes(data)
        if self._pending:
            pending = self._pending
            pending += data
            if len(pending) < self._need:
                return
            data = bytes(pending)
            pending.clear()
        pos = 0
        end = len(data)
        if self._preface_left:
            done = len(H2_PREFACE) - self._preface_left
            n = min(end, self._preface_left)
            if data[:n] != H2_PREFACE[done:done + n]:
                raise H2ConnectionError(PROTOCOL_ERROR, "invalid connection preface")
            self._preface_left -= n
            pos = n
        unpack = FRAME_HEADER.unpack_from
        max_frame = self._max_frame
        while end - pos >= 9:
            hi, lo, ftype, flags, sid = unpack(data, pos)
            length = hi << 8 | lo
            if length > max_frame:
                raise H2ConnectionError(FRAME_SIZE_ERROR, f"frame of {length} bytes "
                                        f"(SETTINGS_MAX_FRAME_SIZE is {max_frame})")
            start = pos + 9
            stop = start + length
            if stop > end:
                self._need = stop - pos
                break
            pos = stop
            sid &= 0x7FFFFFFF
            if not self._got_settings and ftype != SETTINGS:
                raise H2ConnectionError(PROTOCOL_ERROR, "the first frame must be SETTINGS")
            if self._hb_sid and ftype != CONTINUATION:
                raise H2ConnectionError(PROTOCOL_ERROR, "a frame inside a header block")
            if ftype == DATA:
                self._frame_data(flags, sid, data, start, stop, out)
            elif ftype == HEADERS:
                self._frame_headers(flags, sid, data, start, stop, out)
            elif ftype < 10:
                _HANDLERS[ftype](self, flags, sid, data, start, stop, out)
            # unknown frame types are ignored (section 4.1)
        else:
            self._need = 9
        if pos < end:
            self._pending += data[pos:] if pos else data

    def _frame_data(self, flags: int, sid: int, data: bytes, start: int, stop: int,
                    out: list[Event]) -> None:
        if sid == 0:
            raise H2ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        flen = stop - start
        if flen > self._conn_recv:
            raise H2ConnectionError(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        self._conn_recv -= flen
        if flags & PADDED:
            if not flen:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "PADDED DATA without a pad length")
            pad = data[start]
            if pad >= flen:
                raise H2ConnectionError(PROTOCOL_ERROR, "padding as long as the frame")
            start += 1
            stop -= pad
        st = self._streams.get(sid)
        if st is None or st.remote_done:
            if st is not None:  # half-closed (remote)
                self._give_back(sid, None, flen)
                self._stream_error(sid, STREAM_CLOSED, out)
                return
            kind = self._untracked(sid)
            if kind != _IGNORE:
                raise _frame_on(kind, "DATA", sid)
            self._give_back(sid, None, flen)
            return
        if flen > st.recv_window:
            self._give_back(sid, None, flen)
            self._stream_error(sid, FLOW_CONTROL_ERROR, out)
            return
        st.recv_window -= flen
        size = stop - start
        if flen != size:  # padding is consumed at once
            self._give_back(sid, st, flen - size)
        end_stream = flags & END_STREAM
        if st.body_left >= 0:
            left = st.body_left = st.body_left - size
            if left < 0 or (end_stream and left):
                self._give_back(sid, None, size)
                self._stream_error(sid, PROTOCOL_ERROR, out)
                return
        st.unacked += size
        out.append(Data(sid, data[start:stop], bool(end_stream)))
        if end_stream:
            self._remote_end(sid, st)

    def _remote_end(self, sid: int, st: H2Stream) -> None:
        st.remote_done = True
        if st.local_done and st.unacked == 0:
            self._close_stream(sid)

    def _frame_headers(self, flags: int, sid: int, data: bytes, start: int, stop: int,
                       out: list[Event]) -> None:
        if sid == 0:
            raise H2ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
        pad = 0
        if flags & PADDED:
            if start >= stop:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "PADDED HEADERS without a pad length")
            pad = data[start]
            start += 1
        self_dependent = False
        if flags & PRIORITY_FLAG:
            if start + 5 > stop:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            self_dependent = U32.unpack_from(data, start)[0] & 0x7FFFFFFF == sid
            start += 5
        if pad > stop - start:
            raise H2ConnectionError(PROTOCOL_ERROR, "padding longer than the header block")
        stop -= pad
        if flags & END_HEADERS:
            self._header_block(sid, data, start, stop, flags, self_dependent, out)
            return
        if stop - start > self._max_block:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "header block too large")
        self._hb_sid = sid
        self._hb_parts = [data[start:stop]]
        self._hb_size = stop - start
        self._hb_flags = flags | (0x100 if self_dependent else 0)

    def _frame_continuation(self, flags: int, sid: int, data: bytes, start: int, stop: int,
                            out: list[Event]) -> None:
        if not self._hb_sid or sid != self._hb_sid:
            raise H2ConnectionError(PROTOCOL_ERROR, f"unexpected CONTINUATION on stream {sid}")
        self._hb_size += stop - start
        if self._hb_size > self._max_block:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "header block too large")
        self._hb_parts.append(data[start:stop])
        if flags & END_HEADERS:
            block = b"".join(self._hb_parts)
            self._hb_sid, self._hb_parts = 0, []
            hb_flags = self._hb_flags
            self._header_block(sid, block, 0, len(block), hb_flags, bool(hb_flags & 0x100), out)

    def _header_block(self, sid: int, data: bytes, start: int, stop: int, flags: int,
                      self_dependent: bool, out: list[Event]) -> None:
        try:
            fields = self._decoder.decode(data, start, stop)
        except HeaderListTooLarge as exc:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, str(exc)) from None
        except HpackError as exc:
            raise H2ConnectionError(COMPRESSION_ERROR, f"HPACK: {exc}") from None
        end_stream = bool(flags & END_STREAM)
        st = self._streams.get(sid)
        if st is not None:
            if st.remote_done:
                self._stream_error(sid, STREAM_CLOSED, out)
            elif self_dependent:
                self._stream_error(sid, PROTOCOL_ERROR, out)
            else:
                self._on_stream_headers(sid, st, fields, end_stream, out)
            return
        kind = self._untracked(sid)
        if kind == _IGNORE:
            return
        if kind != _IDLE:
            raise _frame_on(kind, "HEADERS", sid)
        if self._client_side or not sid & 1:
            raise H2ConnectionError(PROTOCOL_ERROR, f"HEADERS opening stream {sid} "
                                    f"(the {'server' if self._client_side else 'client'} may not)")
        self._last_peer_sid = sid
        if self._goaway_sent is not None and sid > self._goaway_sent:
            self._remember(sid, _IGNORE)  # after our GOAWAY: not processed, ignored
        elif self_dependent:
            self._stream_error(sid, PROTOCOL_ERROR, out, report=True)
        else:
            self._on_new_stream(sid, fields, end_stream, out)

    def _frame_priority(self, flags: int, sid: int, data: bytes, start: int, stop: int,
                        out: list[Event]) -> None:
        if sid == 0:
            raise H2ConnectionError(PROTOCOL_ERROR, "PRIORITY on stream 0")
        if stop - start != 5:
            self._stream_error(sid, FRAME_SIZE_ERROR, out)
        elif U32.unpack_from(data, start)[0] & 0x7FFFFFFF == sid and sid in self._streams:
            self._stream_error(sid, PROTOCOL_ERROR, out)

    def _frame_rst_stream(self, flags: int, sid: int, data: bytes, start: int, stop: int,
                          out: list[Event]) -> None:
        if sid == 0:
            raise H2ConnectionError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if stop - start != 4:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "RST_STREAM is not 4 bytes")
        if sid in self._streams:
            self._forget(sid, _CLOSED)
            out.append(StreamReset(sid, U32.unpack_from(data, start)[0], True))
        elif self._untracked(sid) == _IDLE:
            raise H2ConnectionError(PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")

    def _frame_settings(self, flags: int, sid: int, data: bytes, start: int, stop: int,
                        out: list[Event]) -> None:
        if sid:
            raise H2ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if stop != start:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            if not self._got_settings:
                raise H2ConnectionError(PROTOCOL_ERROR, "the first frame must be SETTINGS")
            if not self._settings_acked:  # ours take effect
                self._settings_acked = True
                self._decoder.set_limit(self.settings.hpack_table_size)
                delta = self._stream_window - self._recv_initial
                self._recv_initial += delta
                for st in self._streams.values():
                    st.recv_window += delta
            return
        if (stop - start) % 6:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
        self._got_settings = True
        changed = False
        for pos in range(start, stop, 6):
            ident, value = SETTING.unpack_from(data, pos)
            if ident == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise H2ConnectionError(FLOW_CONTROL_ERROR, f"INITIAL_WINDOW_SIZE {value}")
                delta = value - self._peer_initial
                self._peer_initial = value
                for st in self._streams.values():
                    st.send_window += delta
                    if st.send_window > MAX_WINDOW:
                        raise H2ConnectionError(FLOW_CONTROL_ERROR, "a stream window overflowed")
                changed = True
            elif ident == MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME <= value <= MAX_FRAME_LIMIT:
                    raise H2ConnectionError(PROTOCOL_ERROR, f"MAX_FRAME_SIZE {value}")
                self._peer_max_frame = value
                changed = True
            elif ident == HEADER_TABLE_SIZE:
                if value != self._encoder.header_table_size:
                    self._encoder.header_table_size = value
            elif ident == MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value
            elif ident == ENABLE_PUSH:
                if value > 1 or (value and self._client_side):
                    raise H2ConnectionError(PROTOCOL_ERROR, f"ENABLE_PUSH {value}")
            elif ident == ENABLE_CONNECT_PROTOCOL:
                if value > 1:
                    raise H2ConnectionError(PROTOCOL_ERROR, f"ENABLE_CONNECT_PROTOCOL {value}")
        self._out.append(SETTINGS_ACK_FRAME)
        if changed and self._blocked:
            self._on_window_opened(self._blocked, out)

    def _frame_push_promise(self, flags: int, sid: int, data: bytes, start: int, stop: int,
                            out: list[Event]) -> None:
        raise H2ConnectionError(PROTOCOL_ERROR, "PUSH_PROMISE (push is disabled)")

    def _frame_ping(self, flags: int, sid: int, data: bytes, start: int, stop: int,
                    out: list[Event]) -> None:
        if sid:
            raise H2ConnectionError(PROTOCOL_ERROR, "PING on a stream")
        if stop - start != 8:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "PING is not 8 bytes")
        if not flags & ACK:
            self._out.append(ping_frame(data[start:stop], ack=True))

    def _frame_goaway(self, flags: int, sid: int, data: bytes, start: int, stop: int,
                      out: list[Event]) -> None:
        if sid:
            raise H2ConnectionError(PROTOCOL_ERROR, "GOAWAY on a stream")
        if stop - start < 8:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
        last = U32.unpack_from(data, start)[0] & 0x7FFFFFFF
        code = U32.unpack_from(data, start + 4)[0]
        previous = self._goaway_received
        self._goaway_received = last if previous is None else min(previous, last)
        ours = 1 if self._client_side else 0
        for s in [s for s in self._streams if s > last and s & 1 == ours]:
            self._forget(s)  # not processed by the peer: the runtime learns it from GoAway
        out.append(GoAway(last, code))

    def _frame_window_update(self, flags: int, sid: int, data: bytes, start: int, stop: int,
                             out: list[Event]) -> None:
        if stop - start != 4:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE is not 4 bytes")
        increment = U32.unpack_from(data, start)[0] & 0x7FFFFFFF
        if sid == 0:
            if not increment:
                raise H2ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._conn_send += increment
            if self._conn_send > MAX_WINDOW:
                raise H2ConnectionError(FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            if self._blocked:
                self._on_window_opened(self._blocked, out)
            return
        st = self._streams.get(sid)
        if st is None:
            if self._untracked(sid) == _IDLE:
                raise H2ConnectionError(PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}")
            return
        if not increment:
            self._stream_error(sid, PROTOCOL_ERROR, out)
            return
        st.send_window += increment
        if st.send_window > MAX_WINDOW:
            self._stream_error(sid, FLOW_CONTROL_ERROR, out)
        elif sid in self._blocked:
            self._on_window_opened((sid,), out)


def _frame_on(kind: int, frame: str, sid: int) -> H2ConnectionError:
    if kind == _CLOSED:
        return H2ConnectionError(STREAM_CLOSED, f"{frame} on closed stream {sid}")
    if kind == _IDLE:
        return H2ConnectionError(PROTOCOL_ERROR, f"{frame} on idle stream {sid}")
    return H2ConnectionError(PROTOCOL_ERROR, f"{frame} on stream {sid}, which was never opened")


_HANDLERS = (H2Connection._frame_data, H2Connection._frame_headers,
             H2Connection._frame_priority, H2Connection._frame_rst_stream,
             H2Connection._frame_settings, H2Connection._frame_push_promise,
             H2Connection._frame_ping, H2Connection._frame_goaway,
             H2Connection._frame_window_update, H2Connection._frame_continuation)
