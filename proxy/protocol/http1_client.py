"""HTTP/1.1 client side (upstream): requests → bytes; response bytes in → events.

Requests are written in origin-form with a Host header from the authority; a body
without Content-Length goes chunked. Responses are matched to requests in order
(pipelining works, though Envoy itself sends one at a time; HEAD, CONNECT and
upgrade requests need an idle connection). 1xx responses are skipped,
except 101 which, like a 2xx to CONNECT, turns the connection into a raw tunnel.
Responses to HEAD (and to CONNECT) are cut at the end of their head before llhttp
sees them, since llhttp cannot be told that such a response has no body. A
response without framing is read until the peer closes (``receive_data(b"")``).

States::

    state      event                                        next
    IDLE       send(RequestHead) / send_request(...)        WAITING (request queued)
    WAITING    response head                                BODY, or IDLE if bodiless
    BODY       body bytes / end / trailers                  BODY / IDLE
    WAITING    101 (upgrade asked) / 2xx to CONNECT         TUNNEL (raw Data)
    any        bad bytes, unsupported Transfer-Encoding,
               response without a request                   ERROR (ProtocolError 502)
    any        EOF                                          CLOSED (Data end for a
               close-delimited body; StreamReset for unfinished requests)

`reusable` says whether another request may be sent on this connection.
"""
from __future__ import annotations

from collections import deque

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from .events import (CANCEL, ConnectionClosed, Data, Event, Headers, RequestHead,
                     ResponseHead, StreamReset, Trailers)
from .http1_common import (CHUNKED, FIXED, NO_BODY, TUNNEL, V11, Http1Base,
                           LocalProtocolError, Reject, http_version)
from .limits import DEFAULT_HTTP1_LIMITS, Http1Limits

# Kinds of request, which decide how the response is read.
_NORMAL, _HEAD, _CONNECT, _UPGRADE = 0, 1, 2, 3
# Request headers the codec owns: it writes Host and the framing itself.
_OWNED = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection",
                    b"keep-alive", b"proxy-connection", b"upgrade"})
_SPECIAL = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
_HEAD_END = b"\r\n\r\n"


class Http1ClientConnection(Http1Base):
    """One upstream HTTP/1.1 connection. See the module docstring."""

    __slots__ = ("_pending", "_sid", "_open", "_skip", "_cut", "_keep", "_until_close",
                 "_reason", "_tunnel", "_closed", "_sending", "_head_buf")

    def __init__(self, limits: Http1Limits = DEFAULT_HTTP1_LIMITS) -> None:
        super().__init__(limits)
        self._parser = HttpResponseParser(self)
        self._parser.set_dangerous_leniencies(lenient_transfer_encoding=True)
        self._pending: deque[tuple[int, int]] = deque()  # (stream_id, kind) in order
        self._sid = 0               # stream of the response being read
        self._open = False          # a response head was reported, its end not yet
        self._skip = False          # reading a 1xx response: report nothing
        self._cut = False           # a HEAD response: drop the parser after its head
        self._keep = True           # the peer allows reuse
        self._until_close = False   # the response body ends at EOF
        self._reason = b""
        self._tunnel = False
        self._closed = False
        self._sending: int | None = None  # stream whose request body is being sent
        self._head_buf = b""

    def __repr__(self) -> str:
        return (f"<Http1ClientConnection pending={len(self._pending)} "
                f"reusable={self.reusable} tunnel={self._tunnel}>")

    @property
    def reusable(self) -> bool:
        """Idle, both messages complete, and the server allows keep-alive."""
        return (self._keep and not self._pending and not self._open
                and self._sending is None and not self._tunnel and not self._closed
                and self._error is None and not self._held and not self._head_buf)

    @property
    def tunnel(self) -> bool:
        return self._tunnel

    # -- send ---------------------------------------------------------------
    def send(self, event: Event) -> bytes:
        cls = event.__class__
        if cls is Data:
            return self._frame_data(event.data, event.end_stream)  # type: ignore[attr-defined]
        if cls is RequestHead:
            e: RequestHead = event  # type: ignore[assignment]
            return self.send_request(e.method, e.target, e.authority, e.headers, b"",
                                     e.end_stream, e.stream_id, e.upgrade)
        if cls is Trailers:
            return self._frame_trailers(event.headers)  # type: ignore[attr-defined]
        if cls is StreamReset:  # HTTP/1 cannot reset a stream: never reuse the connection
            self._keep = False
            return b""
        raise TypeError(f"cannot send {cls.__name__} on an HTTP/1.1 client connection")

    def send_request(self, method: bytes, target: bytes, authority: bytes, headers: Headers,
                     body: bytes = b"", end_stream: bool = True, stream_id: int = 1,
                     upgrade: bytes | None = None) -> bytes:
        """A request head and ``body`` as one bytes object. ``end_stream=True``:
        ``body`` is the whole body (Content-Length is written from it).
        ``end_stream=False``: more body follows via ``send(Data)``, chunked unless
        ``headers`` carry a Content-Length. ``upgrade`` (e.g. ``b"websocket"``)
        asks to switch protocols; CONNECT opens a tunnel to ``authority``."""
        if self._sending is not None:
            raise LocalProtocolError("previous request body not finished")
        if method == b"CONNECT":
            kind, target = _CONNECT, authority
        elif upgrade is not None:
            kind = _UPGRADE
        else:
            kind = _HEAD if method == b"HEAD" else _NORMAL
        if kind != _NORMAL and self._pending:
            # llhttp cannot stop at the end of the response before it, and the
            # response to this one is read differently: send it on an idle connection.
            raise LocalProtocolError(f"{method.decode()} cannot be pipelined")
        parts = [method, b" ", target, b" HTTP/1.1\r\nhost: ", authority, b"\r\n"]
        cl = None
        for name, value in headers:
            if name in _OWNED:
                if name == b"content-length":
                    cl = value
                continue
            parts += (name, b": ", value, b"\r\n")
        left = 0
        if kind == _CONNECT or kind == _UPGRADE:
            if kind == _UPGRADE:
                parts += (b"connection: upgrade\r\nupgrade: ", upgrade, b"\r\n")  # type: ignore[list-item]
            mode = TUNNEL
        elif end_stream:
            if body or method in _BODY_METHODS:
                parts.append(b"content-length: %d\r\n" % len(body))
            mode = NO_BODY
        elif cl is not None:
            parts += (b"content-length: ", cl, b"\r\n")
            left, mode = int(cl), FIXED
        else:
            parts.append(b"transfer-encoding: chunked\r\n")
            mode = CHUNKED
        parts.append(b"\r\n")
        self._pending.append((stream_id, kind))
        self._send_mode, self._send_left = mode, left
        self._sending = None if mode == NO_BODY else stream_id
        if body:
            parts.append(body if mode == NO_BODY else self._frame_data(body, False))
        return b"".join(parts)

    def _message_sent(self) -> None:
        if self._send_mode == TUNNEL:
            return  # a tunnel's half-close is the runtime's business
        if self._send_left > 0:
            self._keep = False  # body cut short: the server cannot find the next request
        self._sending = None
        self._send_mode = NO_BODY

    # -- receive ------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the server (``b""`` = server closed); returns events."""
        if self._error is not None or self._closed:
            return []
        if not data:
            return self._eof()
        if self._tunnel:
            return [Data(self._sid, data, False)]
        events = self._events = []
        try:
            while data:
                if self._in_head and self._pending and self._pending[0][1] in (_HEAD, _CONNECT):
                    data = self._head_only(data)
                    continue
                if self._held or (self._line_open and self._in_head and b"\n" not in data):
                    feed = self._guard(data)
                    if feed is not None:
                        self._feed(feed)
                else:  # _guard's other cases, inlined: the data completes a line (or more), or body bytes
                    if self._in_head:
                        self._head_raw += len(data)
                        self._line_open = data[-1] != 10
                    else:
                        self._quiet += len(data)
                    self._feed(data)
                break
        except (HttpParserError, Reject) as exc:
            err = self._parse_error(exc, 502, self._sid or None)
            err.status_code = 502  # whatever the cause, downstream sees a bad gateway
            events.append(err)
        return events

    def _head_only(self, data: bytes) -> bytes:
        """Feed one response head (and nothing after it); returns the rest."""
        buf = self._head_buf + data
        if self._held:
            buf = bytes(self._held) + buf
            self._held.clear()
        end = buf.find(_HEAD_END)
        if end < 0:
            if len(buf) > self._max_raw:
                raise Reject(431, "response headers size exceeds limit")
            self._head_buf = buf
            return b""
        self._head_buf = b""
        end += 4
        self._feed(buf[:end])
        if self._tunnel:
            rest = buf[end:]
            if rest:
                self._events.append(Data(self._sid, rest, False))
            return b""
        if self._cut:  # a response to HEAD: whatever its framing says, it ended
            self._cut = False
            self._in_head = True
            self._parser = HttpResponseParser(self)
            self._parser.set_dangerous_leniencies(lenient_transfer_encoding=True)
        return buf[end:]

    def _feed(self, data: bytes) -> None:
        self._fed = len(data)
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as exc:
            self._tunnel = True
            rest = data[exc.args[0]:]
            if rest:
                self._events.append(Data(self._sid, rest, False))
        else:
            if self._in_head:  # _after_feed, inlined
                if self._head_raw > self._max_raw:
                    raise Reject(431, "headers size exceeds limit")
            elif self._quiet > self._max_raw:
                raise Reject(431, "trailers size exceeds limit")

    def _eof(self) -> list[Event]:
        self._closed = True
        events: list[Event] = []
        if self._tunnel:
            events.append(Data(self._sid, b"", True))
        elif self._open and self._until_close:
            events.append(Data(self._sid, b"", True))
            self._pending.popleft()
        for sid, _ in self._pending:
            events.append(StreamReset(sid, CANCEL, True))
        self._pending.clear()
        events.append(ConnectionClosed())
        return events

    def on_message_begin(self) -> None:
        self._headers = []
        self._reason = b""

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._quiet = 0
        max_bytes = self._max_bytes
        if len(self._headers) > self._max_count or self._head_raw > max_bytes or self._fed > max_bytes:
            self._extra = len(self._reason)  # the limits could be exceeded: count exactly
            self._check_headers("headers")
        self._head_raw = self._extra = 0
        parser = self._parser
        status = parser.get_status_code()
        if status < 200 and status != 101:
            self._skip = True
            return
        if not self._pending:
            raise Reject(502, "response without a request")
        sid, kind = self._pending[0]
        self._sid = sid
        headers = self._headers
        keep = parser.should_keep_alive()
        cl = te = connection = None
        for name, value in headers:
            if name in _SPECIAL:
                if name == b"content-length":
                    cl = value
                elif name == b"connection":
                    connection = value.lower()
                elif te is not None:
                    raise Reject(502, "unsupported transfer encoding")
                else:
                    te = value
        content_length = None
        chunked = end_stream = False
        if te is not None and te.lower() != b"chunked":
            raise Reject(502, "unsupported transfer encoding")
        text = parser.get_http_version()
        version = V11 if text == "1.1" else http_version(parser)
        if status == 101 or (kind == _CONNECT and status < 300):
            if status == 101 and kind != _UPGRADE:
                raise Reject(502, "101 without an upgrade request")
            keep = False
            self._pending.popleft()
            if kind == _CONNECT:
                self._tunnel = True  # else HttpParserUpgrade follows
        elif kind == _HEAD:
            # llhttp judges keep-alive by framing a HEAD response does not have
            keep = not (connection and b"close" in connection) and (
                version == b"1.1" or bool(connection and b"keep-alive" in connection))
            end_stream = self._cut = True
        elif status == 204 or status == 304:
            end_stream = True
        elif te is not None:
            chunked = True
        elif cl is not None:
            content_length = int(cl)
            end_stream = content_length == 0
        else:
            self._until_close = True
            keep = False
        self._keep = self._keep and keep
        self._events.append(ResponseHead(
            sid, status, headers, self._reason.strip(), version, keep,
            content_length, chunked, end_stream))
        self._headers = []
        if end_stream:
            self._pending.popleft()
        elif status != 101 and not self._tunnel:
            self._open = True

    def on_body(self, body: bytes) -> None:
        self._quiet = 0
        self._events.append(Data(self._sid, body, False))

    def on_message_complete(self) -> None:
        self._quiet = 0
        self._in_head = True
        if self._skip:
            self._skip = False
            return
        if not self._open:
            return  # bodiless (already ended) or a tunnel
        self._open = False
        sid = self._sid
        if self._headers:
            self._check_headers("trailers")
            self._events.append(Trailers(sid, self._headers))
            self._headers = []
        else:
            self._end_stream(self._events, sid)
        self._pending.popleft()
