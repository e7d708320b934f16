"""What every runtime object may reach: the loop, stats and telemetry, TLS contexts,
the node, access-log sinks and process-wide knobs. One per DataPlane, created once;
snapshot-specific state lives in `Generation` (generation.py), never here.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from typing import TYPE_CHECKING

from isthmus.proxy.stats import Stats
from isthmus.proxy.telemetry import IstioTelemetry
from isthmus.shared.service.http import http_date

if TYPE_CHECKING:
    from isthmus.proxy.runtime.access_log import Sinks
    from isthmus.proxy.runtime.node import NodeInfo
    from isthmus.proxy.runtime.tls import TlsContexts

DEFAULT_REQUEST_HEADERS_TIMEOUT = 10.0


class Runtime:
    def __init__(self, loop: asyncio.AbstractEventLoop, stats: Stats, node: "NodeInfo", tls: "TlsContexts",
                 sinks: "Sinks", *, worker_id: int = 0, request_headers_timeout: float = DEFAULT_REQUEST_HEADERS_TIMEOUT) -> None:
        self.loop = loop
        self.stats = stats
        self.node = node
        self.tls = tls
        self.sinks = sinks
        self.worker_id = worker_id
        self.telemetry = IstioTelemetry(stats, node)
        self.request_headers_timeout = request_headers_timeout
        self.connection_ids = itertools.count(worker_id << 48 | 1)
        self.draining = False
        self.generation = None  # the newest Generation (set by DataPlane.apply)
        self.connections: set = set()  # live downstream apps (HTTP and TCP), for drain and ticks
        self._date_second = -1
        self._date = b""

    def date(self) -> bytes:
        """The `date` header value, formatted once per second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = http_date(now).encode()
        return self._date
