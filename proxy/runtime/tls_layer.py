"""Downstream TLS over `ssl.SSLObject` + MemoryBIO, between the socket and the app.

`TlsLayer` is the socket's asyncio Protocol after the filter chain picked TLS: the
bytes the listener filters already read (the ClientHello) are fed first, so nothing
is lost. After the handshake it fills `ConnInfo` (peer certificate, SPIFFE id, ALPN,
version) and starts the app protocol (HTTP or TCP proxy) on a `TlsTransport`: the
app reads plaintext and writes through it as if it were the socket. A failed
handshake (no client certificate when required, untrusted chain) closes the
connection.
"""
from __future__ import annotations

import ssl
from typing import Callable

from isthmus.proxy.runtime.tls import PeerCert, ServerTls, check_peer

READ_SIZE = 256 * 1024


class TlsTransport:
    """What the app sees as its transport (the subset of asyncio.Transport we use)."""

    __slots__ = ("layer",)

    def __init__(self, layer: "TlsLayer") -> None:
        self.layer = layer

    def write(self, data: bytes) -> None:
        self.layer.write_plain(data)

    def writelines(self, chunks) -> None:
        self.layer.write_plain(b"".join(chunks))

    def close(self) -> None:
        self.layer.close()

    def abort(self) -> None:
        self.layer.transport.abort()

    def is_closing(self) -> bool:
        return self.layer.transport.is_closing()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.layer.close_notify()

    def pause_reading(self) -> None:
        self.layer.transport.pause_reading()

    def resume_reading(self) -> None:
        self.layer.transport.resume_reading()

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        self.layer.transport.set_write_buffer_limits(high=high, low=low)

    def get_write_buffer_size(self) -> int:
        return self.layer.transport.get_write_buffer_size()

    def get_extra_info(self, name: str, default=None):
        if name == "ssl_object":
            return self.layer.sslobj
        return self.layer.transport.get_extra_info(name, default)


class TlsLayer:
    """asyncio Protocol for a TLS-terminated downstream connection."""

    def __init__(self, server: ServerTls, info, start_app: Callable[[], object], on_failure: Callable[[str], None],
                 loop, handshake_timeout: float | None = 15.0) -> None:
        self.server = server
        self.info = info
        self.start_app = start_app
        self.on_failure = on_failure
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.sslobj = server.context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.transport = None
        self.app = None
        self.handshaking = True
        self.closed = False
        self._timer = loop.call_later(handshake_timeout, self._timeout) if handshake_timeout else None

    # -- socket side ---------------------------------------------------------------------
    def connection_made(self, transport) -> None:  # pragma: no cover - installed via set_protocol
        self.transport = transport

    def attach(self, transport, initial: bytes) -> None:
        self.transport = transport
        transport.set_protocol(self)
        if initial:
            self.data_received(initial)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.incoming.write(data)
        if self.handshaking:
            try:
                self.sslobj.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return
            except (ssl.SSLError, OSError) as exc:
                self._flush()
                self._fail(getattr(exc, "reason", None) or str(exc))
                return
            self._flush()
            if not self._handshake_done():
                return
        self._read()

    def _read(self) -> None:
        app = self.app
        sslobj = self.sslobj
        while not self.closed:
            try:
                chunk = sslobj.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            except (ssl.SSLError, OSError):
                self.transport.abort()
                return
            if not chunk:  # the peer's close_notify (CPython returns b"" for it)
                self._flush()
                if app is not None and not app.eof_received():
                    self.close()
                return
            app.data_received(chunk)
            if not self.incoming.pending and not sslobj.pending():
                break  # all consumed: skip the read that would only raise SSLWantReadError
        self._flush()

    def _handshake_done(self) -> bool:
        self.handshaking = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        info = self.info
        sslobj = self.sslobj
        der = sslobj.getpeercert(binary_form=True)
        if der is not None:
            info.peer = PeerCert(der, sslobj.getpeercert())
        info.tls = True
        info.alpn = sslobj.selected_alpn_protocol() or ""
        info.tls_version = sslobj.version()
        cipher = sslobj.cipher()
        info.tls_cipher = cipher[0] if cipher else None
        info.local_uri_sans = self.server.local_uri_sans
        validation = self.server.validation
        if info.peer is not None and validation is not None and (validation.san_matchers or validation.certificate_hashes):
            reason = check_peer(info.peer, validation.san_matchers, validation.certificate_hashes)
            if reason is not None:
                self._fail(reason)
                return False
        if self.server.require_client_certificate and info.peer is None:
            self._fail("peer did not return a certificate")
            return False
        self.app = self.start_app()
        self.app.connection_made(TlsTransport(self))
        return not self.closed

    def eof_received(self) -> bool:
        if self.app is not None and not self.handshaking:
            return bool(self.app.eof_received())
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.app is not None:
            self.app.connection_lost(exc)
        elif self.handshaking:
            self.on_failure("connection closed during handshake")

    def pause_writing(self) -> None:
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.app is not None:
            self.app.resume_writing()

    # -- app side --------------------------------------------------------------------------
    def write_plain(self, data: bytes) -> None:
        if self.closed:
            return
        view = memoryview(data)
        while view:
            n = self.sslobj.write(view)
            view = view[n:]
        self._flush()

    def _flush(self) -> None:
        out = self.outgoing.read()
        if out and not self.transport.is_closing():
            self.transport.write(out)

    def close_notify(self) -> None:
        try:
            self.sslobj.unwrap()
        except (ssl.SSLError, OSError):
            pass
        self._flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sslobj.unwrap()
        except (ssl.SSLError, OSError, ValueError):
            pass
        self._flush()
        self.transport.close()

    def _fail(self, reason: str) -> None:
        self.closed = True
        self._flush()
        self.on_failure(str(reason))
        self.transport.close()

    def _timeout(self) -> None:
        self._timer = None
        if self.handshaking and not self.closed:
            self._fail("TLS handshake timeout")
