"""What every service shell shares, without gRPC: address parsing, the SIGTERM event,
running a main under uvloop."""
from __future__ import annotations

import asyncio
import signal
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
