"""A new downstream connection: listener filters, filter-chain selection, hand-off.

`Inspector` is the first asyncio Protocol of an accepted socket. original_dst reads
SO_ORIGINAL_DST (getsockopt(SOL_IP, 80), IPv4) and, with use_original_dst, hands
the connection to the listener of that ip:port in the same generation (Envoy's
hand-off; bind_to_port=false listeners included). tls_inspector parses the
ClientHello (SNI, ALPN) and http_inspector detects h2c / HTTP/1 from the first bytes
already read, bounded by listener_filters_timeout. Then `ListenerRuntime.select_chain`
picks the chain and the connection starts: TLS chains through `TlsLayer` (the
inspected bytes are fed to it), plaintext ones by swapping the transport's protocol
to the app (HttpConnection or TcpSession) and replaying those bytes.
"""
from __future__ import annotations

import socket
import struct

from isthmus.proxy.runtime.clienthello import NEED_MORE, NOT_TLS, ClientHello, inspect_client_hello, inspect_http
from isthmus.proxy.runtime.tls import TlsConfigError
from isthmus.proxy.runtime.tls_layer import TlsLayer

SO_ORIGINAL_DST = 80
MAX_INSPECT = 64 * 1024


class ConnInfo:
    """What we know about a downstream connection (access logs, XFCC, telemetry)."""

    __slots__ = ("remote", "local", "original_dst", "tls", "peer", "local_uri_sans", "sni", "alpn", "conn_id",
                 "chain_name", "tls_version", "tls_cipher", "listener_name", "_strs")

    def __init__(self, conn_id: int = 0) -> None:
        self.remote: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None
        self.original_dst: tuple[str, int] | None = None
        self.tls = False
        self.peer = None
        self.local_uri_sans: tuple[str, ...] = ()
        self.sni = ""
        self.alpn = ""
        self.conn_id = conn_id
        self.chain_name = ""
        self.tls_version = None
        self.tls_cipher = None
        self.listener_name = ""
        self._strs: dict = {}

    def address_text(self, which: str) -> str | None:
        """"ip:port" of `remote` / `local` ([v6]:port), formatted once per connection."""
        text = self._strs.get(which)
        if text is None:
            value = getattr(self, which)
            if value is None:
                return None
            host, port = value
            text = self._strs[which] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return text

    def fill(self, transport) -> None:
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.remote = (peer[0], peer[1]) if isinstance(peer, tuple) else ("0.0.0.0", 0)
        self.local = (local[0], local[1]) if isinstance(local, tuple) else ("0.0.0.0", 0)


def original_destination(transport) -> tuple[str, int] | None:
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_INET:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except (OSError, AttributeError):
        return None
    port = struct.unpack_from("!H", raw, 2)[0]
    ip = socket.inet_ntoa(raw[4:8])
    return ip, port


class Inspector:
    """asyncio Protocol until the filter chain is known; see the module docstring."""

    def __init__(self, listener, rt) -> None:
        self.listener = listener
        self.rt = rt
        self.transport = None
        self.info = ConnInfo(next(rt.connection_ids))
        self.buf = b""
        self.timer = None
        self.sni = ""
        self.alpn: tuple[str, ...] = ()
        self.transport_protocol = "raw_buffer"
        self.need_tls = self.need_http = False
        self.done = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        info = self.info
        info.fill(transport)
        listener = self.listener
        listener.stats.downstream_cx_total.value += 1
        if listener.original_dst:
            dst = original_destination(transport)
            if dst is not None and dst != info.local:
                info.original_dst = dst
                info.local = dst
                if listener.config.use_original_dst:
                    target = listener.gen.listener_for(dst[0], dst[1])
                    if target is not None and target is not listener:
                        self.listener = listener = target
        info.listener_name = listener.config.name
        self.need_tls = listener.tls_inspector
        self.need_http = listener.http_inspector
        if not self.need_tls and not self.need_http:
            self._select()
            return
        timeout = listener.config.listener_filters_timeout
        if timeout:
            self.timer = self.rt.loop.call_later(timeout, self._timeout)

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.buf += data
        buf = self.buf
        if self.need_tls:
            hello = inspect_client_hello(buf, self.listener.max_client_hello)
            if hello is NEED_MORE and len(buf) < MAX_INSPECT:
                return
            self.need_tls = False
            if isinstance(hello, ClientHello):
                self.transport_protocol = "tls"
                self.sni = hello.server_name
                self.alpn = hello.alpn
                self.need_http = False
            elif hello is not NOT_TLS:
                self.listener.stats.downstream_listener_filter_error.value += 1
        if self.need_http:
            kind = inspect_http(buf)
            if kind is NEED_MORE and len(buf) < MAX_INSPECT:
                return
            self.need_http = False
            if isinstance(kind, str):
                self.alpn = (kind,)
        self._select()

    def eof_received(self) -> bool:
        if not self.done:
            self.need_tls = self.need_http = False
            if self.buf:
                self._select()
                return True
        return False

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.done = True

    def _timeout(self) -> None:
        self.timer = None
        if self.done:
            return
        self.listener.stats.downstream_pre_cx_timeout.value += 1
        if self.listener.config.continue_on_listener_filters_timeout:
            self.need_tls = self.need_http = False
            self._select()
        else:
            self.done = True
            self.transport.close()

    def _select(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        info, listener = self.info, self.listener
        info.sni = self.sni
        chain = listener.select(info, self.sni, self.transport_protocol, self.alpn)
        if chain is None:
            listener.stats.no_filter_chain_match.value += 1
            self.transport.close()
            return
        start_chain(chain, self.transport, info, self.buf, listener, self.rt)


def start_chain(chain, transport, info: ConnInfo, initial: bytes, listener, rt) -> None:
    """Start the app of `chain` (a ChainRuntime) on an accepted transport."""
    info.chain_name = chain.config.name
    if chain.config.tls is not None:
        try:
            server = rt.tls.server(chain.config.tls, listener.gen.snapshot.secrets)
        except TlsConfigError:
            listener.stats.downstream_listener_filter_error.value += 1
            transport.close()
            return

        def failed(reason: str) -> None:
            chain.handshake_failed()

        layer = TlsLayer(server, info, lambda: chain.make_app(info), failed, rt.loop,
                         chain.config.transport_socket_connect_timeout or 15.0)
        layer.attach(transport, initial)
        return
    app = chain.make_app(info)
    transport.set_protocol(app)
    app.connection_made(transport)
    if initial:
        app.data_received(initial)
