"""One bound listening socket (`ListenerServer`) accepting into the listener config
current at accept time.

The socket is made here (SO_REUSEADDR; SO_REUSEPORT when several worker processes
share ports; IPv4, IPv6 or a unix path) so bind errors come back as strings the xDS
client can NACK with. `listener` is swapped on config updates without touching the
socket. Each accept builds the connection's first protocol: the `Inspector` (listener
filters, chain selection), or — when the listener has no listener filters and a
single plaintext chain that matches everything — the app itself (HttpConnection or
TcpSession), the fast path.
"""
from __future__ import annotations

import os
import socket

from isthmus.proxy.runtime.connection import ConnInfo, Inspector
from isthmus.shared.service.runtime import tcp_listener

DEFAULT_BACKLOG = 1024


def address_key(address) -> str:
    return f"unix://{address.pipe}" if address.pipe else str(address)


class ListenerServer:
    def __init__(self, rt, listener, reuse_port: bool = False) -> None:
        self.rt = rt
        self.listener = listener
        self.reuse_port = reuse_port
        self.key = address_key(listener.config.address)
        self.server = None
        self.error = ""

    async def bind(self) -> str | None:
        """Bind and start accepting; returns why not, or None."""
        cfg = self.listener.config
        a = cfg.address
        backlog = cfg.tcp_backlog_size or DEFAULT_BACKLOG
        loop = self.rt.loop
        try:
            if a.pipe:
                if a.pipe.startswith("@"):
                    path = "\0" + a.pipe[1:]
                else:
                    path = a.pipe
                    if os.path.exists(path):
                        os.unlink(path)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.bind(path)
                if a.pipe_mode and not a.pipe.startswith("@"):
                    os.chmod(path, a.pipe_mode)
                sock.listen(backlog)
                sock.setblocking(False)
                self.server = await loop.create_unix_server(self._accept, sock=sock, backlog=backlog)
                return None
            sock = tcp_listener(a.host, a.port, backlog, self.reuse_port)
            self.server = await loop.create_server(self._accept, sock=sock, backlog=backlog)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return self.error
        return None

    @property
    def bound_address(self) -> tuple | None:
        if self.server is None or not self.server.sockets:
            return None
        return self.server.sockets[0].getsockname()

    def _accept(self):
        lr = self.listener
        fast = lr.fast_chain
        if fast is not None and fast.config.tls is None and not self.rt.draining:
            lr.stats.downstream_cx_total.value += 1
            info = ConnInfo()
            info.chain_name = fast.config.name
            info.listener_name = lr.config.name
            return fast.make_app(info)
        return Inspector(lr, self.rt)

    def close(self) -> None:
        """Stop accepting (connections already accepted carry on)."""
        if self.server is not None:
            self.server.close()
            self.server = None
