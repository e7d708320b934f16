"""Backpressure between the two sides of a proxied stream (uvicorn's flow_control idea).

Each connection owns one `FlowControl` over its transport. Writing side: the
transport calls the protocol's pause_writing/resume_writing at the high/low water
marks; `write_paused` is then True and callbacks registered with `on_drain` run when
the buffer drains. Reading side: several reasons may hold a connection's reading
paused at once (one per blocked peer stream); `pause_reading(reason)` /
`resume_reading(reason)` keep them in a set and the transport resumes only when the
set is empty. The pattern: after forwarding bytes to the other side, if its
`write_paused`, pause our reading with the other side as the reason and resume on
its drain.
"""
from __future__ import annotations

from typing import Callable, Hashable

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class FlowControl:
    __slots__ = ("transport", "write_paused", "_readers", "_drain", "closed")

    def __init__(self, transport=None) -> None:
        self.transport = transport
        self.write_paused = False
        self._readers: set[Hashable] = set()
        self._drain: list[Callable[[], None]] = []
        self.closed = False
        if transport is not None:
            self.set_transport(transport)

    def set_transport(self, transport) -> None:
        self.transport = transport
        try:
            transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        except (AttributeError, NotImplementedError):
            pass
        if self._readers:
            transport.pause_reading()

    # -- reading ------------------------------------------------------------
    @property
    def read_paused(self) -> bool:
        return bool(self._readers)

    def pause_reading(self, reason: Hashable) -> None:
        if not self._readers and self.transport is not None and not self.closed:
            try:
                self.transport.pause_reading()
            except (AttributeError, RuntimeError):
                pass
        self._readers.add(reason)

    def resume_reading(self, reason: Hashable) -> None:
        readers = self._readers
        if reason in readers:
            readers.discard(reason)
            if not readers and self.transport is not None and not self.closed:
                try:
                    self.transport.resume_reading()
                except (AttributeError, RuntimeError):
                    pass

    # -- writing ------------------------------------------------------------
    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._run_drain()

    def on_drain(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the write buffer drains (at once when it is not paused)."""
        if not self.write_paused or self.closed:
            callback()
        else:
            self._drain.append(callback)

    def close(self) -> None:
        """The connection is gone: release everyone waiting on it."""
        self.closed = True
        self.write_paused = False
        self._run_drain()

    def _run_drain(self) -> None:
        callbacks, self._drain = self._drain, []
        for cb in callbacks:
            cb()


def relay_backpressure(source: FlowControl, sink: FlowControl, reason: Hashable) -> None:
    """After writing to `sink`: if it is full, stop reading `source` until it drains."""
    if sink.write_paused and reason not in source._readers:
        source.pause_reading(reason)
        sink.on_drain(lambda: source.resume_reading(reason))
