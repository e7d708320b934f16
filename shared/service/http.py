"""A small HTTP/1.1 server on asyncio (httptools parses) for the few endpoints each process serves:
the proxy's admin and status ports, the services' /metrics and /healthz, pilot's /debug/*.

Contract: `serve(app, host, port)` binds exactly `host:port` and returns an `HttpServer`.
Handlers are `async def handler(Request) -> Response`, run one at a time per connection
(pipelined requests queue); each request arrives whole (body buffered up to a limit) and
every response carries Content-Length. Bad input gets a 4xx and a closed connection; a
failing handler gets a 500 and a log line; nothing a client sends stops the server.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from http import HTTPStatus
from typing import Awaitable, Callable, Iterator, Mapping, NoReturn
from urllib.parse import parse_qsl, unquote

import httptools

from isthmus.shared.logging import get_logger
from isthmus.shared.service.runtime import tcp_listener

log = get_logger("shared.http")

Handler = Callable[["Request"], Awaitable["Response"]]
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float | None = None) -> str:
    """An IMF-fixdate (RFC 9110 5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, without
    importing the email package (~0.7 MiB in every sidecar)."""
    t = time.gmtime(seconds)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (_DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year,
                                                   t.tm_hour, t.tm_min, t.tm_sec)


_MANAGED = {"content-length", "connection", "transfer-encoding", "date"}  # the server writes these
_PIPELINE_DEPTH = 8  # queued requests per connection before reading pauses


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may cost. `read_timeout` runs from a request's first byte (or the
    connection opening) until it is whole; `idle_timeout` is the keep-alive gap (Go's names)."""

    max_body: int = 1 << 20
    max_head: int = 64 << 10  # request line + headers
    read_timeout: float = 10.0
    idle_timeout: float = 75.0


class Headers(Mapping[str, str]):
    """Request headers, looked up case-insensitively; a repeated name gives its first value."""

    def __init__(self, items: list[tuple[str, str]]):
        self.items_raw = items
        self._first: dict[str, str] = {}
        for name, value in items:
            self._first.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getall(self, name: str) -> list[str]:
        return [v for n, v in self.items_raw if n.lower() == name.lower()]


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, without the query
    query_string: str
    headers: Headers
    body: bytes = b""
    version: str = "1.1"
    query: Mapping[str, str] = dataclasses.field(init=False, repr=False)  # first value per key

    def __post_init__(self) -> None:
        query: dict[str, str] = {}
        for key, value in parse_qsl(self.query_string, keep_blank_values=True):
            query.setdefault(key, value)  # `?graceful` → {"graceful": ""}
        object.__setattr__(self, "query", query)

    async def read(self) -> bytes:
        return self.body


class Response:
    """aiohttp.web.Response's constructor: `text` is sent as `<content_type or text/plain>;
    charset=utf-8`; `body` (bytes) as `content_type`, a Content-Type header, or octet-stream."""

    __slots__ = ("status", "body", "headers")

    def __init__(self, *, status: int = 200, text: str | None = None, body: bytes | None = None,
                 content_type: str | None = None, headers: Mapping[str, str] | None = None):
        extra = {k: v for k, v in (headers or {}).items() if k.lower() not in _MANAGED}
        given = next((extra.pop(k) for k in list(extra) if k.lower() == "content-type"), None)
        if text is not None:
            if body is not None:
                raise ValueError("Response: give text or body, not both")
            body = text.encode()
            ctype = given if given and content_type is None else f"{content_type or 'text/plain'}; charset=utf-8"
        elif body is not None:
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise TypeError(f"Response body must be bytes (got {type(body).__name__}); use text= for str")
            body, ctype = bytes(body), content_type or given or "application/octet-stream"
        else:
            body, ctype = b"", content_type or given
        if ctype:
            extra["Content-Type"] = ctype
        for k, v in extra.items():
            if "\r" in k or "\n" in k or "\r" in str(v) or "\n" in str(v):
                raise ValueError(f"Response header {k!r}: CR/LF not allowed")
        self.status, self.body, self.headers = status, body, extra

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def encode(self, *, head: bool, close: bool, http10: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_phrase(self.status)}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        bodiless = self.status in (204, 304) or 100 <= self.status < 200
        if not bodiless:
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append(f"Date: {http_date()}")
        if close:
            lines.append("Connection: close")
        elif http10:
            lines.append("Connection: keep-alive")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head_bytes if head or bodiless else head_bytes + self.body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def error_response(status: int, **kw) -> Response:
    """aiohttp's plain error pages: `404: Not Found`."""
    return Response(status=status, text=f"{status}: {_phrase(status)}", **kw)


class App:
    """Exact-path routes: method → handler per path. GET also answers HEAD; `*` takes any method."""

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Handler]] = {}

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        method = method.upper()
        if not path.startswith("/"):
            raise ValueError(f"route {method} {path!r}: path must start with '/'")
        methods = self._routes.setdefault(path, {})
        if method in methods or "*" in methods or (method == "*" and methods):
            raise ValueError(f"route {method} {path}: already routed ({', '.join(methods)})")
        methods[method] = handler

    def add_get(self, path: str, handler: Handler, *, allow_head: bool = True) -> None:
        self.add_route("GET", path, handler)
        if allow_head:
            self.add_route("HEAD", path, handler)

    def add_post(self, path: str, handler: Handler) -> None:
        self.add_route("POST", path, handler)

    def resolve(self, method: str, path: str) -> Handler | Response:
        """The handler, or the 404 / 405 (with Allow) to send instead."""
        methods = self._routes.get(path)
        if methods is None:
            return error_response(404)
        handler = methods.get(method) or methods.get("*")
        if handler is None:
            return error_response(405, headers={"Allow": ", ".join(sorted(methods))})
        return handler

    async def handle(self, request: Request) -> Response:
        """Never raises (but for cancellation): a failing handler is a 500 and a log line."""
        handler = self.resolve(request.method, request.path)
        if isinstance(handler, Response):
            return handler
        try:
            response = await handler(request)
            if not isinstance(response, Response):
                raise TypeError(f"handler returned {type(response).__name__}, not Response")
            return response
        except Exception as exc:  # noqa: BLE001 - one page failing must not take the server down
            log.exception("http handler failed", method=request.method, path=request.path, error=repr(exc))
            return error_response(500)


class _Reject(Exception):
    def __init__(self, status: int):
        self.status = status


class _Connection(asyncio.Protocol):
    """One client connection: parser callbacks queue whole requests; one task answers them in order."""

    def __init__(self, server: HttpServer):
        self._server, self._limits = server, server.limits
        self._parser = httptools.HttpRequestParser(self)
        self._pending: collections.deque[tuple[Request, bool]] = collections.deque()
        self._worker: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading = True  # False after an error, an upgrade, a timeout or shutdown: answer what is queued, close
        self._final: Response | None = None  # the error to send after the queue, then close
        self._closed = False
        self._in_message = False
        self._paused = False  # reading, for a full pipeline
        self._reset_message()

    # ---- transport events ----
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: asyncio.Transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()
        self._server._connections.add(self)
        self._arm(self._limits.read_timeout)

    def data_received(self, data: bytes) -> None:
        if not self._reading:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # Upgrade / CONNECT: answered as plain HTTP, then closed
            self._stop_reading(None)
        except httptools.HttpParserError:
            self._stop_reading(self._reject or 400)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_timer()
        self._writable.set()
        self._server._connections.discard(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # ---- httptools callbacks ----
    def _reset_message(self) -> None:
        self._url, self._headers, self._body = b"", [], []
        self._head_size = self._body_size = 0
        self._reject: int | None = None

    def on_message_begin(self) -> None:
        self._reset_message()
        self._in_message = True
        self._arm(self._limits.read_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def _count_head(self, n: int) -> None:
        self._head_size += n
        if self._head_size > self._limits.max_head:
            self._fail(431)

    def on_headers_complete(self) -> None:
        headers = Headers(self._headers)
        length = headers.get("content-length", "0")
        if not length.isdigit():
            self._fail(400)
        if int(length) > self._limits.max_body:
            self._fail(413)
        if headers.get("expect", "").lower() == "100-continue" and not self._pending and self._worker is None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._limits.max_body:  # chunked bodies say no length up front
            self._fail(413)
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._cancel_timer()
        try:
            url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            self._fail(400)
        request = Request(method=self._parser.get_method().decode("latin-1"),
                          path=unquote((url.path or b"/").decode("latin-1")),
                          query_string=(url.query or b"").decode("latin-1"), headers=Headers(self._headers),
                          body=b"".join(self._body), version=self._parser.get_http_version())
        self._pending.append((request, self._parser.should_keep_alive()))
        if len(self._pending) >= _PIPELINE_DEPTH and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        if self._worker is None:
            self._worker = self._loop.create_task(self._answer())

    def _fail(self, status: int) -> NoReturn:
        self._reject = status
        raise _Reject(status)  # stops the parser; data_received sends `status` and closes

    # ---- answering ----
    async def _answer(self) -> None:
        try:
            while self._pending and not self._closed:
                request, keep_alive = self._pending.popleft()
                response = await self._server.app.handle(request)
                if self._closed:
                    return
                close = not keep_alive or (not self._pending and not self._reading and self._final is None)
                self._transport.write(response.encode(head=request.method == "HEAD", close=close,
                                                      http10=request.version == "1.0"))
                if close:
                    self._close()
                    return
                if not self._writable.is_set():
                    try:
                        await asyncio.wait_for(self._writable.wait(), self._limits.idle_timeout)
                    except asyncio.TimeoutError:  # a client that sends but does not read
                        self._transport.abort()
                        return
                if self._paused and self._reading and len(self._pending) < _PIPELINE_DEPTH:
                    self._paused = False
                    self._transport.resume_reading()
            if self._closed:
                return
            if self._final is not None:
                self._transport.write(self._final.encode(head=False, close=True, http10=False))
            if not self._reading:
                self._close()
            elif not self._in_message:
                self._arm(self._limits.idle_timeout)
        except Exception as exc:  # noqa: BLE001 - e.g. a response that cannot be encoded
            log.exception("http connection failed", error=repr(exc))
            self._transport.abort()
        finally:
            self._worker = None

    def _stop_reading(self, status: int | None) -> None:
        """Read no more: answer what is queued, send `status` if given, close."""
        if not self._reading:
            return
        self._reading = False
        self._cancel_timer()
        if status is not None:
            self._final = error_response(status)
        if not self._closed:
            self._transport.pause_reading()
            if self._worker is None:
                self._worker = self._loop.create_task(self._answer())

    def _close(self) -> None:
        """Close after the buffered answer is sent, but do not wait forever for a client that does not read."""
        self._transport.close()
        if self._transport.get_write_buffer_size():
            self._loop.call_later(self._limits.idle_timeout, self._transport.abort)

    def shutdown(self) -> None:
        self._stop_reading(None)

    def _arm(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = self._loop.call_later(seconds, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        self._stop_reading(408 if self._in_message else None)  # idle: just close


class HttpServer:
    """What `serve` returns: `.port` (the bound one, also for port 0) and `close()`."""

    def __init__(self, app: App, limits: Limits):
        self.app, self.limits = app, limits
        self._connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self.port = 0  # the bound port (of the first socket, when a name resolves to several)

    @property
    def sockets(self) -> tuple:
        return tuple(self._server.sockets) if self._server else ()

    def __repr__(self) -> str:
        busy = sum(1 for c in self._connections if c._worker is not None)
        where = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in self.sockets) or "closed"
        return f"<HttpServer {where} | {len(self._connections)} connections, {busy} active>"

    async def close(self, timeout: float = 5.0) -> None:
        """Stop listening, close idle connections, give requests in flight `timeout` seconds."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for conn in list(self._connections):
            conn.shutdown()  # idle ones close now; busy ones after their queued answers
        me = asyncio.current_task()  # a handler may close its own server: do not wait for ourselves
        busy = {c._worker: c for c in self._connections if c._worker is not None and c._worker is not me}
        if busy:
            _, late = await asyncio.wait(busy, timeout=timeout)
            for task in late:
                task.cancel()
                busy[task]._transport.abort()
        if not any(c._worker is me for c in self._connections):  # 3.12+ also waits for connections here
            await server.wait_closed()

    cleanup = close  # aiohttp AppRunner's name, which the services' shutdown paths call


async def serve(app: App, host: str, port: int, limits: Limits = Limits()) -> HttpServer:
    """Listen on exactly `host:port` (SO_REUSEADDR, as aiohttp did); OSError when it cannot."""
    server = HttpServer(app, limits)
    loop = asyncio.get_running_loop()
    server._server = await loop.create_server(lambda: _Connection(server), sock=tcp_listener(host, port, 511))
    server.port = server._server.sockets[0].getsockname()[1]
    return server
