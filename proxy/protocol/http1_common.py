"""What the HTTP/1.1 server and client codecs share: status lines, body framing on
the send side (`BodyFraming` modes), and the receive-side guard that keeps
httptools from buffering an unbounded or byte-by-byte header line.

httptools (llhttp) calls back with complete header lines but concatenates a line
that arrives in many pieces itself, and it has no size limits. So while a head is
being read, the pieces of a line after its first are held here (in a bytearray,
linear) and fed once the line ends, and the raw bytes of a head are capped a little above the
header limit (431). Envoy's exact limits (name+value bytes, header count) are
checked once the head is complete. Elsewhere (bodies, trailers, chunk
extensions) a counter of bytes fed without any parser callback bounds what
llhttp may hold.
"""
from __future__ import annotations

import abc

from http import HTTPStatus

from httptools import HttpParserCallbackError, HttpParserError

from .events import Data, Event, Headers, ProtocolError
from .limits import Http1Limits

# Send-side body framing of the message in progress.
NO_BODY = 0       # HEAD response, 204, 304, bodiless request: Data is dropped
FIXED = 1         # Content-Length: bytes pass through, counted
CHUNKED = 2       # Transfer-Encoding: chunked
UNTIL_CLOSE = 3   # HTTP/1.0 peer, no length: body ends when the connection closes
TUNNEL = 4        # after 101 / CONNECT 2xx: raw bytes both ways

LAST_CHUNK = b"0\r\n\r\n"
CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"

_STATUS_LINES = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
    for status in HTTPStatus
}
V11 = b"1.1"
_VERSIONS = {"1.1": V11, "1.0": b"1.0"}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <code> <standard phrase>\\r\\n``; Envoy, too, regenerates phrases."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"HTTP status {status}: must be between 100 and 999")
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d Unknown\r\n" % status
    return line


def http_version(parser: object) -> bytes:
    """The parser's version as ``b"1.1"``/``b"1.0"``, or ``b"x.y"`` as received."""
    text = parser.get_http_version()  # type: ignore[attr-defined]
    return _VERSIONS.get(text) or text.encode()


def header_block(headers: Headers) -> list[bytes]:
    """``name: value\\r\\n`` pieces for ``b"".join`` (used for trailers)."""
    parts: list[bytes] = []
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    return parts


class Reject(Exception):
    """Raised inside parser callbacks to stop parsing with an HTTP status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class LocalProtocolError(Exception):
    """The caller asked this codec to send something HTTP/1.1 cannot express
    (a response with no request, more body than Content-Length ...). A bug in the
    caller, not in the peer."""


class Http1Base(abc.ABC):
    """Receive-side plumbing and send-side body framing for one HTTP/1 connection.
    Subclasses provide the parser and the message callbacks."""

    __slots__ = ("_parser", "_limits", "_max_bytes", "_max_count", "_max_raw", "_events",
                 "_headers", "_extra", "_in_head", "_held", "_line_open", "_head_raw", "_fed", "_quiet",
                 "_send_mode", "_send_left", "_error")

    def __init__(self, limits: Http1Limits) -> None:
        self._limits = limits
        self._max_bytes = limits.max_headers_bytes
        self._max_count = limits.max_headers_count
        # raw head bytes: every name and value, ": " and CRLF per line, request line
        self._max_raw = self._max_bytes + 4 * self._max_count + 1024
        self._events: list[Event] = []
        self._headers: Headers = []
        self._extra = 0            # bytes outside the headers that count (URL, reason)
        self._fed = 0              # length of the data being fed now
        self._in_head = True       # between messages or inside a head
        self._held = bytearray()   # head bytes not yet fed: no newline seen
        self._line_open = False    # the parser holds part of a head line
        self._head_raw = 0         # bytes received while inside the current head
        self._quiet = 0            # bytes fed since the parser last called back
        self._send_mode = NO_BODY
        self._send_left = 0
        self._error: ProtocolError | None = None

    # -- receive side -------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value.rstrip()))

    def _check_headers(self, what: str) -> None:
        """Envoy's limits on a complete head or trailer block: name and value bytes
        (plus the URL) and the number of headers. The byte sum is only computed
        when the raw bytes could exceed the limit."""
        headers = self._headers
        if len(headers) > self._max_count:
            raise Reject(431, f"too many {what}")
        limit = self._max_bytes
        if self._head_raw > limit or self._fed > limit or what == "trailers":
            size = self._extra
            for name, value in headers:
                size += len(name) + len(value)
            if size > limit:
                raise Reject(431, f"{what} size exceeds limit")

    def on_chunk_header(self) -> None:
        self._quiet = 0

    def on_chunk_complete(self) -> None:
        self._quiet = 0

    def _guard(self, data: bytes) -> bytes | None:
        """Bytes to feed now, or None while a head line is still incomplete. The
        first piece of a line is fed (so garbage fails fast); later pieces wait
        for the newline, and httptools joins each line at most twice."""
        if self._in_head:
            self._head_raw += len(data)
            if self._held:
                self._held += data
                if b"\n" not in data:
                    if self._head_raw > self._max_raw:
                        raise Reject(431, "headers size exceeds limit")
                    return None
                data = bytes(self._held)
                self._held.clear()
            elif self._line_open and b"\n" not in data:
                self._held += data
                return None
            self._line_open = data[-1] != 10  # ends mid-line
            return data
        self._quiet += len(data)
        return data

    def _after_feed(self) -> None:
        if self._in_head:
            if self._head_raw > self._max_raw:
                raise Reject(431, "headers size exceeds limit")
        elif self._quiet > self._max_raw:
            raise Reject(431, "trailers size exceeds limit")

    def _parse_error(self, exc: Exception, status: int, stream_id: int | None) -> ProtocolError:
        """Translate a parser exception; a non-Reject exception from our own
        callbacks is a bug and is re-raised."""
        if isinstance(exc, Reject):
            err = ProtocolError(exc.status, exc.reason, True, stream_id)
        else:
            cause = exc.__context__
            if isinstance(exc, HttpParserCallbackError) and cause is not None:
                if not isinstance(cause, Reject):
                    raise cause
                err = ProtocolError(cause.status, cause.reason, True, stream_id)
            elif isinstance(exc, HttpParserError):
                err = ProtocolError(status, f"http/1.1 protocol error: {exc}", True, stream_id)
            else:
                raise exc
        self._error = err
        return err

    @staticmethod
    def _end_stream(events: list[Event], stream_id: int) -> None:
        """End ``stream_id``: flag the Data just produced, else add an empty one."""
        if events:
            last = events[-1]
            if last.__class__ is Data and last.stream_id == stream_id:  # type: ignore[attr-defined]
                last.end_stream = True  # type: ignore[attr-defined]
                return
        events.append(Data(stream_id, b"", True))

    # -- send side ----------------------------------------------------------
    def _frame_data(self, data: bytes, end_stream: bool) -> bytes:
        mode = self._send_mode
        if mode == CHUNKED:
            out = b"%x\r\n%b\r\n" % (len(data), data) if data else b""
            if end_stream:
                out += LAST_CHUNK
        elif mode == FIXED:
            self._send_left -= len(data)
            if self._send_left < 0:
                raise LocalProtocolError("body longer than its Content-Length")
            out = data
        elif mode == NO_BODY:
            out = b""
        else:
            out = data
        if end_stream:
            self._message_sent()
        return out

    def _frame_trailers(self, headers: Headers) -> bytes:
        chunked = self._send_mode == CHUNKED
        self._message_sent()
        if not chunked:
            return b""  # HTTP/1 can only carry trailers in chunked bodies; Envoy drops them
        return b"".join([b"0\r\n", *header_block(headers), b"\r\n"])

    @abc.abstractmethod
    def _message_sent(self) -> None:
        """The side's own bookkeeping once a whole message has been written."""
