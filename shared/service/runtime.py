"""What every service shell shares, without gRPC: address parsing, the SIGTERM event,
running a main under uvloop."""
from __future__ import annotations

import asyncio
import signal
import socket
from typing import Callable


def split_address(addr: str, default_port: int) -> tuple[str, int]:
    """`127.0.0.1:9901`, `:9901`, `[::1]:9901`, `host` → (host, port)."""
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr, default_port
    return host or "127.0.0.1", int(port)


def host_bytes(name: str) -> bytes:
    """A host name as a resolver takes it. The event loop would encode a str with the idna
    codec, whose first use loads unicodedata and stringprep (~0.4 MiB): ASCII names, which
    the codec returns unchanged, skip it."""
    return name.encode() if name.isascii() else name.encode("idna")


def tcp_listener(host: str, port: int, backlog: int, reuse_port: bool = False) -> socket.socket:
    """A listening, non-blocking TCP socket on exactly `host:port` (SO_REUSEADDR; SO_REUSEPORT when
    asked; an IPv6 wildcard also takes IPv4). Bound here rather than by the loop's `create_server(host,
    port)`, which resolves the host through the idna codec (and unicodedata) even for an IP literal."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host == "::" else 1)
        sock.bind((host or "0.0.0.0", port))
        sock.listen(backlog)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    return sock


_malloc_trim = None


def release_free_memory() -> bool:
    """Give the C heap's free pages back to the OS (glibc's malloc_trim), as a long-lived
    process should after it drops a large structure: a sidecar after a configuration
    replaced the previous one (about 1 MiB of resident memory at start). False where the
    C library has no malloc_trim."""
    global _malloc_trim
    if _malloc_trim is None:
        import ctypes  # on first use: ~0.3 MiB

        _malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", False)
    if not _malloc_trim:
        return False
    _malloc_trim(0)
    return True


def stop_event() -> asyncio.Event:
    """An event set on SIGTERM/SIGINT (the caller then drains and exits)."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event


def run(main: Callable[[], "asyncio.Future | object"]) -> None:
    """Run an async main under uvloop when available."""
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(main())
