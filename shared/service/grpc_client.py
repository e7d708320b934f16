"""A small asyncio gRPC client over the data plane's HTTP/2 codec (no grpcio).

The sidecar's only gRPC calls are its xDS stream to pilot and its certificate
requests to citadel; grpcio costs a sidecar ~12 MiB of resident memory and a
handful of threads for that, so the agent speaks gRPC itself:

    channel = Channel("127.0.0.1:15012", tls=ctx, server_name="istiod.istio-system.svc")
    resp = await channel.unary("/pkg.Service/Method", request, Response, timeout=5)
    call = channel.stream("/pkg.Service/Stream", Response)
    await call.write(msg) ... msg = await call.read()  # None at the end of the stream
    call.cancel(); await channel.close()

One HTTP/2 connection per channel, opened on first use and again after it is lost
or the server sent GOAWAY; calls are streams on it. Messages are length-prefixed,
uncompressed; received DATA is acknowledged as it arrives (each message is bounded
by `max_receive`). Failures raise `RpcError(code, details)` with gRPC's status
codes: connect errors and lost connections are UNAVAILABLE, a timeout
DEADLINE_EXCEEDED, a non-200 HTTP status maps as the gRPC spec says.
"""
from __future__ import annotations

import asyncio
import enum
import socket
import ssl
from typing import Any, Iterable
from urllib.parse import unquote

from isthmus.proxy.protocol.events import (CANCEL, ConnectionClosed, Data, GoAway, ProtocolError,
                                           ResponseHead, StreamReset, Trailers)
from isthmus.proxy.protocol.http2 import Http2ClientConnection
from isthmus.proxy.protocol.limits import Http2Settings
from isthmus.shared.service.runtime import host_bytes, split_address
from isthmus.shared.tls import Context, load_chain_pem

USER_AGENT = b"isthmus-grpc/1"
DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024
# Windows large enough that a multi-MiB xDS push is not paced by round trips.
SETTINGS = Http2Settings(initial_stream_window_size=4 * 1024 * 1024,
                         initial_connection_window_size=16 * 1024 * 1024)


class StatusCode(enum.IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# gRPC over HTTP/2: the status a non-200 HTTP response means.
_HTTP_TO_GRPC = {400: StatusCode.INTERNAL, 401: StatusCode.UNAUTHENTICATED, 403: StatusCode.PERMISSION_DENIED,
                 404: StatusCode.UNIMPLEMENTED, 429: StatusCode.UNAVAILABLE, 502: StatusCode.UNAVAILABLE,
                 503: StatusCode.UNAVAILABLE, 504: StatusCode.UNAVAILABLE}


class RpcError(Exception):
    def __init__(self, code: StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def describe(exc: BaseException) -> str:
    """`CODE: details` for an RpcError, `Type: message` for anything else (for logs)."""
    if isinstance(exc, RpcError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def mtls_context(chain_pem: bytes, key_pem: bytes, roots_pem: bytes) -> ssl.SSLContext:
    """A client context that presents `chain_pem`/`key_pem`, trusts only `roots_pem`
    and checks the server's name (the channel's `server_name`) against its DNS SANs."""
    ctx = Context(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=roots_pem.decode())
    load_chain_pem(ctx, chain_pem, key_pem)
    ctx.set_alpn_protocols(["h2"])
    return ctx


def _frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def _timeout_header(seconds: float) -> bytes:
    return b"%dm" % max(1, int(seconds * 1000))


class Call:
    """One RPC: a stream on the channel's connection. `read()` returns the next
    decoded message, None once the server ended the stream with OK; it raises the
    RpcError the server (or a lost connection) ended it with."""

    def __init__(self, conn: "_Connection", stream_id: int, response_type: Any, max_receive: int) -> None:
        self._conn, self.stream_id = conn, stream_id
        self._response_type, self._max = response_type, max_receive
        self._buf = bytearray()
        self._messages: asyncio.Queue = asyncio.Queue()
        self._headers_seen = False
        self.done = False
        self.initial_metadata: dict[bytes, bytes] = {}

    # -- writing -----------------------------------------------------------------------
    async def write(self, message: Any) -> None:
        if self.done:
            raise RpcError(StatusCode.CANCELLED, "the call has ended")
        data = message if isinstance(message, (bytes, bytearray)) else message.SerializeToString()
        self._conn.send_data(self.stream_id, _frame(bytes(data)), False)

    async def done_writing(self) -> None:
        if not self.done:
            self._conn.send_data(self.stream_id, b"", True)

    def cancel(self) -> None:
        if not self.done:
            self._finish(RpcError(StatusCode.CANCELLED, "cancelled by the client"))
            self._conn.reset(self.stream_id)

    # -- reading -----------------------------------------------------------------------
    async def read(self) -> Any:
        item = await self._messages.get()
        if isinstance(item, RpcError):
            self._messages.put_nowait(item)  # every later read sees the same end
            raise item
        if item is None:
            self._messages.put_nowait(None)
            return None
        return self._response_type.FromString(item) if self._response_type is not None else item

    # -- events from the connection ----------------------------------------------------
    def _on_head(self, head: ResponseHead) -> None:
        self._headers_seen = True
        self.initial_metadata = dict(head.headers)
        if head.status != 200:
            code = _HTTP_TO_GRPC.get(head.status, StatusCode.UNKNOWN)
            self._fail(code, f"the server answered HTTP {head.status}, not a gRPC response")
            return
        ctype = self.initial_metadata.get(b"content-type", b"")
        if not ctype.startswith(b"application/grpc"):
            self._fail(StatusCode.UNKNOWN, f"the server answered content-type {ctype.decode('latin-1')!r}")
            return
        if head.end_stream:  # Trailers-Only: the status is in the headers
            self._on_trailers(head.headers)

    def _on_data(self, data: bytes, end_stream: bool) -> None:
        buf = self._buf
        buf += data
        while len(buf) >= 5:
            size = int.from_bytes(buf[1:5], "big")
            if buf[0] != 0:
                self._fail(StatusCode.INTERNAL, "the server sent a compressed message (no encoding was offered)")
                return
            if size > self._max:
                self._fail(StatusCode.RESOURCE_EXHAUSTED,
                           f"received message larger than max ({size} vs. {self._max})")
                return
            if len(buf) < 5 + size:
                break
            self._messages.put_nowait(bytes(buf[5:5 + size]))
            del buf[:5 + size]
        if end_stream:
            self._fail(StatusCode.INTERNAL, "the server ended the stream without a grpc-status")

    def _on_trailers(self, headers) -> None:
        h = dict(headers)
        raw = h.get(b"grpc-status")
        if raw is None:
            self._fail(StatusCode.UNKNOWN, "the server ended the stream without a grpc-status")
            return
        try:
            code = StatusCode(int(raw))
        except ValueError:
            code = StatusCode.UNKNOWN
        if self._buf:
            self._fail(StatusCode.INTERNAL, "the stream ended inside a message")
        elif code == StatusCode.OK:
            self._finish(None)
        else:
            self._finish(RpcError(code, unquote(h.get(b"grpc-message", b"").decode("latin-1"))))

    def _fail(self, code: StatusCode, details: str) -> None:
        """An error this side found: end the call and reset the stream."""
        if not self.done:
            self._finish(RpcError(code, details))
            self._conn.reset(self.stream_id)

    def _finish(self, end: RpcError | None) -> None:
        if not self.done:
            self.done = True
            self._messages.put_nowait(end)
            self._conn.forget(self.stream_id)


class _Connection(asyncio.Protocol):
    def __init__(self, authority: bytes, scheme: bytes) -> None:
        self.authority, self.scheme = authority, scheme
        self.codec = Http2ClientConnection(SETTINGS)
        self.transport: asyncio.Transport | None = None
        self.calls: dict[int, Call] = {}
        self.usable = True
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # a peer that vanished without a FIN is found in ~6 min, not the kernel's 2 h
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                for opt, value in (("TCP_KEEPIDLE", 300), ("TCP_KEEPINTVL", 30), ("TCP_KEEPCNT", 3)):
                    if hasattr(socket, opt):
                        sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
            except OSError:
                pass
        self._flush()

    def _flush(self) -> None:
        out = self.codec.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    def open(self, path: bytes, metadata: Iterable[tuple[str, str]], timeout: float | None,
             response_type: Any, max_receive: int) -> Call:
        if not self.usable or not self.codec.can_open_stream:
            raise RpcError(StatusCode.UNAVAILABLE, "the connection is closing")
        headers = [(b"content-type", b"application/grpc"), (b"te", b"trailers"), (b"user-agent", USER_AGENT)]
        if timeout is not None:
            headers.append((b"grpc-timeout", _timeout_header(timeout)))
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in metadata]
        sid = self.codec.send_request(b"POST", path, self.authority, headers, scheme=self.scheme)
        call = self.calls[sid] = Call(self, sid, response_type, max_receive)
        self._flush()
        return call

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            raise RpcError(StatusCode.UNAVAILABLE, "the connection was lost")
        self.codec.send_data(stream_id, data, end_stream)
        self._flush()

    def reset(self, stream_id: int) -> None:
        self.calls.pop(stream_id, None)
        if self.transport is not None and not self.transport.is_closing():
            self.codec.reset_stream(stream_id, CANCEL)
            self._flush()

    def forget(self, stream_id: int) -> None:
        self.calls.pop(stream_id, None)

    def data_received(self, data: bytes) -> None:
        for ev in self.codec.receive_data(data):
            cls = ev.__class__
            call = self.calls.get(getattr(ev, "stream_id", None) or 0)
            if cls is Data:
                self.codec.acknowledge_received_data(ev.stream_id, len(ev.data))
                if call is not None:
                    call._on_data(ev.data, ev.end_stream)
            elif cls is ResponseHead:
                if call is not None:
                    call._on_head(ev)
            elif cls is Trailers:
                if call is not None:
                    call._on_trailers(ev.headers)
            elif cls is StreamReset:
                if call is not None:
                    call._finish(RpcError(StatusCode.UNAVAILABLE if ev.error_code == 7 else StatusCode.INTERNAL,
                                          f"the stream was reset (HTTP/2 error {ev.error_code})"))
            elif cls is GoAway:
                self.usable = False
                for sid, c in list(self.calls.items()):
                    if sid > ev.last_stream_id:
                        c._finish(RpcError(StatusCode.UNAVAILABLE, "the server is going away (GOAWAY)"))
            elif cls is ProtocolError:
                self._lose(f"HTTP/2 protocol error: {ev.reason}")
                if self.transport is not None:
                    self.transport.close()
            elif cls is ConnectionClosed:
                self._lose("the server closed the connection")
        self._flush()

    def eof_received(self) -> bool:
        self._lose("the server closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(f"the connection was lost: {exc}" if exc else "the connection was closed")
        if not self.closed.done():
            self.closed.set_result(None)

    def _lose(self, why: str) -> None:
        self.usable = False
        for call in list(self.calls.values()):
            call._finish(RpcError(StatusCode.UNAVAILABLE, why))
        self.calls.clear()

    def close(self) -> None:
        self.usable = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.codec.close())
            self.transport.close()


class Channel:
    """A gRPC target: `host:port`, plaintext or over `tls` (check the certificate
    against `server_name`, which is also the :authority)."""

    def __init__(self, target: str, *, tls: ssl.SSLContext | None = None, server_name: str | None = None,
                 max_receive: int = DEFAULT_MAX_RECEIVE, connect_timeout: float = 5.0) -> None:
        self.target = target
        self.host, self.port = split_address(target, 443 if tls else 80)
        self.tls, self.server_name = tls, server_name
        self.max_receive, self.connect_timeout = max_receive, connect_timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future | None = None

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.usable and conn.transport is not None and not conn.transport.is_closing():
            return conn
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        name = self.server_name or self.target
        authority = host_bytes(name)
        scheme = b"https" if self.tls else b"http"
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                lambda: _Connection(authority, scheme), self.host, self.port, ssl=self.tls,
                server_hostname=(self.server_name or self.host) if self.tls else None), self.connect_timeout)
        except asyncio.TimeoutError:
            raise RpcError(StatusCode.UNAVAILABLE, f"connecting to {self.target} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise RpcError(StatusCode.UNAVAILABLE, f"cannot connect to {self.target}: {exc}") from None
        if self.tls is not None:
            proto = conn.transport.get_extra_info("ssl_object").selected_alpn_protocol()
            if proto not in (None, "h2"):
                conn.close()
                raise RpcError(StatusCode.UNAVAILABLE, f"{self.target} negotiated ALPN {proto!r}, not h2")
        self._conn = conn
        return conn

    async def connect(self) -> None:
        """Open the connection now (calls open it on demand)."""
        await self._connection()

    async def stream(self, method: str, response_type: Any = None, *, metadata: Iterable[tuple[str, str]] = (),
                     timeout: float | None = None) -> Call:
        conn = await self._connection()
        return conn.open(method.encode("latin-1"), metadata, timeout, response_type, self.max_receive)

    async def unary(self, method: str, request: Any, response_type: Any = None, *,
                    metadata: Iterable[tuple[str, str]] = (), timeout: float | None = None) -> Any:
        call = await self.stream(method, response_type, metadata=metadata, timeout=timeout)
        try:
            await call.write(request)
            await call.done_writing()
            response = await asyncio.wait_for(call.read(), timeout)
            if response is None:
                raise RpcError(StatusCode.INTERNAL, "the server sent no response message")
            await asyncio.wait_for(call.read(), timeout)  # the trailers: OK, or the error after all
            return response
        except asyncio.TimeoutError:
            call.cancel()
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, f"{method}: no answer in {timeout}s") from None
        except BaseException:
            call.cancel()
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            try:
                await asyncio.wait_for(asyncio.shield(conn.closed), 1.0)
            except asyncio.TimeoutError:
                pass
