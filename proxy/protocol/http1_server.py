"""HTTP/1.1 server side (downstream): request bytes in → events; responses → bytes.

``receive_data(b"")`` means the peer closed. Pipelined requests are parsed as they
arrive (httptools/llhttp, streaming bodies); responses must be sent in request
order. Rejections follow Envoy's HTTP/1 codec: malformed → 400, header bytes or
count over the limits → 431, Transfer-Encoding other than exactly ``chunked`` →
501 (Envoy's NotImplemented), CL+TE / duplicate CL / obs-fold / bad names / CTLs
in values → 400, HTTP/1.0 refused → 426, other versions → 505.

Receive states (per connection)::

    state      event                                   next
    IDLE/HEAD  head complete, no body                  IDLE   (RequestHead end_stream)
    IDLE/HEAD  head complete, Content-Length/chunked   BODY   (RequestHead)
    IDLE/HEAD  Upgrade (not h2c) or CONNECT            TUNNEL (RequestHead upgrade=...)
    BODY       bytes                                   BODY   (Data)
    BODY       end of body                             IDLE   (Data end / Trailers)
    TUNNEL     bytes / EOF                             TUNNEL (raw Data / Data end)
    any        bad bytes                               ERROR  (ProtocolError; input ignored)
    any        EOF                                     CLOSED (StreamReset if mid-body,
                                                               ConnectionClosed)

Send states (per response, oldest unanswered request first)::

    state      call                                    next
    IDLE       ResponseHead 1xx (not 101)              IDLE
    IDLE       ResponseHead 101 / CONNECT 2xx          TUNNEL (raw Data both ways)
    IDLE       ResponseHead / send_response_head_and_body
                                                       BODY (framing chosen) or IDLE
    BODY       Data / Trailers (end_stream)            IDLE; `must_close` when the
                                                       connection cannot be reused
"""
from __future__ import annotations

from collections import deque

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from .events import (CANCEL, ConnectionClosed, Data, Event, Headers, ProtocolError,
                     RequestHead, ResponseHead, StreamReset, Trailers)
from .headers import AUTHORITY_CHARS, split_absolute_form
from .http1_common import (CHUNKED, CONTINUE_100, FIXED, NO_BODY, TUNNEL, UNTIL_CLOSE,
                           _STATUS_LINES, V11, Http1Base, LocalProtocolError, Reject,
                           header_block, http_version, status_line)
from .limits import DEFAULT_HTTP1_LIMITS, Http1Limits

_SPECIAL = frozenset({b"host", b"content-length", b"transfer-encoding", b"expect",
                      b"upgrade"})
# Response headers the codec owns: framing and connection management.
_OWNED = frozenset({b"content-length", b"transfer-encoding", b"connection",
                    b"keep-alive", b"proxy-connection", b"upgrade"})
_CONNECT = b"CONNECT"
_CONTENT_LENGTHS = [b"content-length: %d\r\n" % n for n in range(1024)]  # small bodies: the line formatted once


class _BodyRelay:
    """Parser callbacks for a request whose Upgrade we ignore (h2c, as Envoy does):
    llhttp skipped its body, so a fresh parser is fed a synthetic head with the
    same framing and then the rest of the stream; this relay swallows the
    synthetic head and forwards everything after it."""

    def __init__(self, conn: "Http1ServerConnection") -> None:
        self.conn = conn
        self.passing = False

    def on_headers_complete(self) -> None:
        if self.passing:
            self.conn.on_headers_complete()
        self.passing = True
        self.conn._in_head = False

    def __getattr__(self, name: str):  # on_body, on_header ... once past the head
        target = getattr(self.conn, name)

        def relay(*args: bytes) -> None:
            if self.passing:
                target(*args)
        return relay


class Http1ServerConnection(Http1Base):
    """One downstream HTTP/1.1 connection. See the module docstring."""

    __slots__ = ("_stream_id", "_url", "_pending", "_recv_done", "_reported", "_tunnel",
                 "_upgrading", "_h2c_body", "_must_close", "_closed", "_send_sid",
                 "_send_keep")

    def __init__(self, limits: Http1Limits = DEFAULT_HTTP1_LIMITS) -> None:
        super().__init__(limits)
        self._parser = HttpRequestParser(self)
        self._parser.set_dangerous_leniencies(lenient_transfer_encoding=True)
        self._stream_id = 0
        self._url = b""
        # (stream_id, is_head, keep_alive, http10, upgrade) per unanswered request
        self._pending: deque[tuple[int, bool, bool, bool, bytes | None]] = deque()
        self._recv_done = 0          # highest stream id fully received
        self._reported = 0           # highest stream id reported as a RequestHead
        self._tunnel = False
        self._upgrading = False      # an Upgrade/CONNECT head was just parsed
        self._h2c_body: bytes | None = None
        self._must_close = False
        self._closed = False
        self._send_sid = 0
        self._send_keep = True

    def __repr__(self) -> str:
        return (f"<Http1ServerConnection stream={self._stream_id} "
                f"pending={len(self._pending)} tunnel={self._tunnel} "
                f"must_close={self._must_close} error={self._error is not None}>")

    @property
    def must_close(self) -> bool:
        """Close the connection once the bytes already returned are written."""
        return self._must_close

    @property
    def tunnel(self) -> bool:
        return self._tunnel

    # -- receive ------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer (``b""`` = peer closed); returns events."""
        if self._error is not None or self._closed:
            return []
        if not data:
            return self._eof()
        if self._tunnel:
            return [Data(self._stream_id, data, False)]
        events = self._events = []
        try:
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
        except (HttpParserError, Reject) as exc:
            events.append(self._fail(exc))
        return events

    def _feed(self, data: bytes) -> None:
        while True:
            self._fed = len(data)
            try:
                self._parser.feed_data(data)
            except HttpParserUpgrade as exc:
                data = data[exc.args[0]:]
                if self._h2c_body is None:
                    self._tunnel = True
                    if data:
                        self._events.append(Data(self._stream_id, data, False))
                    return
                self._ignore_upgrade()
                if not data:
                    return
            else:
                if self._in_head:  # _after_feed, inlined
                    if self._head_raw > self._max_raw:
                        raise Reject(431, "headers size exceeds limit")
                elif self._quiet > self._max_raw:
                    raise Reject(431, "trailers size exceeds limit")
                return

    def _ignore_upgrade(self) -> None:
        """After an h2c Upgrade request: carry on as HTTP/1.1 on a fresh parser."""
        synthetic, self._h2c_body = self._h2c_body, None
        self._upgrading = False
        self._in_head = True
        self._parser = HttpRequestParser(_BodyRelay(self) if synthetic else self)
        self._parser.set_dangerous_leniencies(lenient_transfer_encoding=True)
        if synthetic:
            self._parser.feed_data(synthetic)

    def _fail(self, exc: Exception) -> ProtocolError:
        sid = self._stream_id if self._stream_id > self._recv_done else self._stream_id + 1
        err = self._parse_error(exc, 400, sid)
        if self._reported != sid:  # never reported: its error response waits its turn
            self._pending.append((sid, False, False, False, None))
        self._stream_id = sid
        return err

    def _eof(self) -> list[Event]:
        self._closed = True
        events: list[Event] = []
        if self._tunnel:
            events.append(Data(self._stream_id, b"", True))
        elif not self._in_head and self._stream_id > self._recv_done:
            events.append(StreamReset(self._stream_id, CANCEL, True))
        events.append(ConnectionClosed())
        return events

    def on_message_begin(self) -> None:
        self._stream_id += 1
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._quiet = 0
        headers = self._headers
        max_bytes = self._max_bytes
        if len(headers) > self._max_count or self._head_raw > max_bytes or self._fed > max_bytes:
            self._extra = len(self._url)  # the limits could be exceeded: count exactly
            self._check_headers("headers")
        self._head_raw = self._extra = 0
        parser = self._parser
        text = parser.get_http_version()
        if text == "1.1":
            version = V11
            http10 = False
        else:
            version = http_version(parser)
            http10 = version == b"1.0"
            if http10:
                if not self._limits.accept_http_10:
                    raise Reject(426, "HTTP/1.0 not accepted")
            else:
                raise Reject(505 if version >= b"2" else 400, "unsupported HTTP version")
        method = parser.get_method()
        host = te = upgrade = cl = None
        expect = False
        for name, value in headers:
            if name in _SPECIAL:
                if name == b"host":
                    if host is not None:
                        raise Reject(400, "multiple host headers")
                    host = value
                elif name == b"content-length":
                    cl = value
                elif name == b"transfer-encoding":
                    if te is not None:
                        raise Reject(501, "unsupported transfer encoding")
                    te = value
                elif name == b"expect":
                    expect = value.lower() == b"100-continue" and not http10
                else:
                    upgrade = value
        url = self._url
        scheme = None
        if url[:1] == b"/":
            target, authority = url, host
        elif method == _CONNECT:
            target = authority = url
            if b":" not in url:
                raise Reject(400, "CONNECT target must be host:port")
        elif url == b"*" and method == b"OPTIONS":
            target, authority = url, host
        elif not self._limits.allow_absolute_url:
            raise Reject(400, "absolute-form request target not allowed")
        else:
            parts = split_absolute_form(url)
            if parts is None:
                raise Reject(400, "invalid request target")
            scheme, authority, target = parts
        if authority is None:
            if not http10:
                raise Reject(400, "missing host header")
            authority = self._limits.default_host_for_http_10
        elif not authority or authority.translate(None, AUTHORITY_CHARS):
            raise Reject(400, "invalid host")
        content_length = None
        chunked = False
        if te is not None:
            if method == _CONNECT or te.lower() != b"chunked":
                raise Reject(501, "unsupported transfer encoding")
            if cl is not None:
                raise Reject(400, "both content-length and transfer-encoding are set")
            chunked = True
        elif cl is not None:
            content_length = int(cl)
            if method == _CONNECT:
                if content_length:
                    raise Reject(400, "CONNECT with a body")
                content_length = None
        keep_alive = parser.should_keep_alive()
        token = None
        if (upgrade is not None or method == _CONNECT) and parser.should_upgrade():
            self._upgrading = True
            if method == _CONNECT:
                token = b"connect"
            elif upgrade is not None and upgrade.lower()[:3] != b"h2c":
                token = upgrade.lower()
            else:  # Envoy ignores h2c upgrades: an ordinary request
                self._h2c_body = (
                    b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n" if chunked else
                    b"POST / HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % content_length
                    if content_length else b"")
        if token is not None:
            keep_alive = False  # a tunnel, or a refused upgrade: either way no reuse
        end_stream = token is None and not chunked and not content_length
        self._pending.append((self._stream_id, method == b"HEAD", keep_alive, http10, token))
        self._events.append(RequestHead(
            self._stream_id, method, target, authority, headers, version, keep_alive,
            token, content_length, chunked, expect, scheme, end_stream))
        self._headers = []
        self._reported = self._stream_id
        if end_stream:
            self._recv_done = self._stream_id

    def on_body(self, body: bytes) -> None:
        self._quiet = 0
        self._events.append(Data(self._stream_id, body, False))

    def on_message_complete(self) -> None:
        self._quiet = 0
        if self._upgrading:
            return  # HttpParserUpgrade follows: tunnel, or an ignored h2c upgrade
        self._in_head = True
        sid = self._stream_id
        if self._recv_done == sid:
            return  # RequestHead already had end_stream
        self._recv_done = sid
        if self._headers:
            self._check_headers("trailers")
            self._events.append(Trailers(sid, self._headers))
            self._headers = []
        else:
            self._end_stream(self._events, sid)

    # -- send ---------------------------------------------------------------
    def send(self, event: Event) -> bytes:
        """Serialize a ResponseHead, Data or Trailers for the oldest open request;
        a StreamReset only sets `must_close` (HTTP/1 resets by closing)."""
        cls = event.__class__
        if cls is Data:
            return self._frame_data(event.data, event.end_stream)  # type: ignore[attr-defined]
        if cls is ResponseHead:
            return self._head(event.status, event.headers,  # type: ignore[attr-defined]
                              event.end_stream, None)  # type: ignore[attr-defined]
        if cls is Trailers:
            return self._frame_trailers(event.headers)  # type: ignore[attr-defined]
        if cls is StreamReset:  # HTTP/1 cannot reset a stream: drop the connection
            self._must_close = True
            return b""
        raise TypeError(f"cannot send {cls.__name__} on an HTTP/1.1 server connection")

    def send_response_head_and_body(self, status: int, headers: Headers,
                                    body: bytes = b"") -> bytes:
        """A whole response as one bytes object (local replies, small bodies)."""
        return self._head(status, headers, True, body)

    def send_continue(self) -> bytes:
        """``100 Continue`` for a request that had ``Expect: 100-continue``."""
        return CONTINUE_100

    def _head(self, status: int, headers: Headers, end_stream: bool,
              body: bytes | None) -> bytes:
        """Response head (+ the whole ``body`` when given: the fast path)."""
        if not self._pending:
            raise LocalProtocolError("response without a request")
        sid, is_head, keep_alive, http10, upgrade = self._pending[0]
        if status < 200 and status != 101:
            return b"".join([status_line(status), *header_block(headers), b"\r\n"])
        parts = [_STATUS_LINES.get(status) or status_line(status)]
        cl = None
        close = False
        for name, value in headers:
            if name in _OWNED:
                if name == b"content-length":
                    cl = value
                elif name == b"connection" and b"close" in value.lower():
                    close = True
                continue
            parts += (name, b": ", value, b"\r\n")
        left = 0
        body_len = None if body is None else len(body)
        if status == 101 or (upgrade == b"connect" and 200 <= status < 300):
            if upgrade is None:
                raise LocalProtocolError("101 for a request that did not ask to upgrade")
            if status == 101:
                parts += (b"connection: upgrade\r\nupgrade: ", upgrade, b"\r\n")
            mode = TUNNEL
            end_stream = False
        elif status == 204 or status == 304 or is_head:
            mode = NO_BODY
            if cl is not None and status != 204:
                parts += (b"content-length: ", cl, b"\r\n")
            elif body_len is not None and is_head:
                parts.append(b"content-length: %d\r\n" % body_len)
        elif body_len is not None or cl is not None:
            left = body_len if body_len is not None else int(cl)  # type: ignore[arg-type]
            parts.append(_CONTENT_LENGTHS[left] if left < 1024 else b"content-length: %d\r\n" % left)
            mode = FIXED if left else NO_BODY
        elif end_stream:
            parts.append(b"content-length: 0\r\n")
            mode = NO_BODY
        elif not http10:
            parts.append(b"transfer-encoding: chunked\r\n")
            mode = CHUNKED
        else:
            mode = UNTIL_CLOSE
            close = True
        if mode != TUNNEL:
            keep = keep_alive and not close and not self._must_close and sid <= self._recv_done
            if not keep:
                parts.append(b"connection: close\r\n")
            elif http10:
                parts.append(b"connection: keep-alive\r\n")
            self._send_keep = keep
        parts.append(b"\r\n")
        if mode == FIXED and body:
            parts.append(body)
            left = 0
        self._send_mode = mode
        self._send_left = left
        self._send_sid = sid
        if mode == TUNNEL:
            self._pending.popleft()
        elif end_stream:
            self._message_sent()
        return b"".join(parts)

    def _message_sent(self) -> None:
        if self._send_mode == TUNNEL:
            self._must_close = True  # the tunnel's downstream half is done
            return
        if self._pending and self._pending[0][0] == self._send_sid:
            self._pending.popleft()
        if not self._send_keep or self._send_left > 0 or self._send_mode == UNTIL_CLOSE:
            self._must_close = True
        self._send_mode = NO_BODY
        self._send_left = 0
