"""Events shared by the HTTP/1.1 and HTTP/2 codecs: what `receive_data()` returns
and what `send()` accepts.

Contract: a stream is a `RequestHead`/`ResponseHead`, then zero or more `Data`, and it
ends with exactly one of: a head with ``end_stream=True``, a `Data` with
``end_stream=True`` (its data may be empty), `Trailers`, or `StreamReset`.
Header names are lowercase bytes, values bytes; pseudo-headers never appear in
``headers`` (HTTP/2 ``:authority``/``:path``/... are mapped onto fields). Events are
slotted, not frozen, for speed: consumers must treat them as immutable values.
"""
from __future__ import annotations

Headers = list[tuple[bytes, bytes]]

# HTTP/2 error codes (RFC 9113 section 7), also used for HTTP/1 stream resets.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB


class Event:
    """Base: equality and repr from ``__slots__`` (tests compare events by value)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]  # mutable slots: values, not keys

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class RequestHead(Event):
    """A request's head. ``target`` is origin-form (``/p?q``), ``*`` or, for
    CONNECT, the authority. ``authority`` comes from an absolute-form target, the
    Host header or ``:authority``. ``upgrade`` is the lowercased Upgrade token
    (``b"websocket"``) when the connection switches protocols after a 101, and
    ``b"connect"`` for CONNECT tunnels. ``end_stream`` means no body follows."""

    __slots__ = ("stream_id", "method", "target", "authority", "headers",
                 "http_version", "keep_alive", "upgrade", "content_length",
                 "chunked", "expect_continue", "scheme", "end_stream")

    def __init__(self, stream_id: int, method: bytes, target: bytes, authority: bytes,
                 headers: Headers, http_version: bytes = b"1.1", keep_alive: bool = True,
                 upgrade: bytes | None = None, content_length: int | None = None,
                 chunked: bool = False, expect_continue: bool = False,
                 scheme: bytes | None = None, end_stream: bool = False) -> None:
        self.stream_id = stream_id
        self.method = method
        self.target = target
        self.authority = authority
        self.headers = headers
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.content_length = content_length
        self.chunked = chunked
        self.expect_continue = expect_continue
        self.scheme = scheme
        self.end_stream = end_stream


class ResponseHead(Event):
    """A response's head (1xx informational responses are not reported, except 101)."""

    __slots__ = ("stream_id", "status", "headers", "reason", "http_version",
                 "keep_alive", "content_length", "chunked", "end_stream")

    def __init__(self, stream_id: int, status: int, headers: Headers, reason: bytes = b"",
                 http_version: bytes = b"1.1", keep_alive: bool = True,
                 content_length: int | None = None, chunked: bool = False,
                 end_stream: bool = False) -> None:
        self.stream_id = stream_id
        self.status = status
        self.headers = headers
        self.reason = reason
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        self.end_stream = end_stream


class Data(Event):
    """A piece of body (or, after an upgrade/CONNECT, of the raw tunnel)."""

    __slots__ = ("stream_id", "data", "end_stream")

    def __init__(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self.stream_id = stream_id
        self.data = data
        self.end_stream = end_stream


class Trailers(Event):
    """Trailing headers; always ends the stream (gRPC's ``grpc-status`` lives here)."""

    __slots__ = ("stream_id", "headers")

    def __init__(self, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers


class StreamReset(Event):
    """The stream ended abnormally. ``remote`` is True when the peer reset it (or,
    for HTTP/1, closed the connection mid-message); False when this codec reset it
    (e.g. HTTP/2 header limits, as Envoy does)."""

    __slots__ = ("stream_id", "error_code", "remote")

    def __init__(self, stream_id: int, error_code: int = CANCEL, remote: bool = True) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote


class WindowUpdate(Event):
    """HTTP/2: data queued for ``stream_id`` was flushed after the peer opened its
    flow-control window; ``pending`` bytes remain queued (0 = drained)."""

    __slots__ = ("stream_id", "pending")

    def __init__(self, stream_id: int, pending: int = 0) -> None:
        self.stream_id = stream_id
        self.pending = pending


class GoAway(Event):
    """HTTP/2 GOAWAY: streams above ``last_stream_id`` were not processed; open no
    new streams on this connection."""

    __slots__ = ("last_stream_id", "error_code")

    def __init__(self, last_stream_id: int, error_code: int = NO_ERROR) -> None:
        self.last_stream_id = last_stream_id
        self.error_code = error_code


class ConnectionClosed(Event):
    """The peer closed the connection (end of input); nothing more will arrive."""

    __slots__ = ()


class ProtocolError(Event):
    """The peer broke the protocol; parsing stopped. A server answers
    ``status_code`` (400, 431, 501, 505 ...) on ``stream_id`` then closes when
    ``close``; a client treats it as an upstream protocol error."""

    __slots__ = ("status_code", "reason", "close", "stream_id")

    def __init__(self, status_code: int, reason: str, close: bool = True,
                 stream_id: int | None = None) -> None:
        self.status_code = status_code
        self.reason = reason
        self.close = close
        self.stream_id = stream_id

