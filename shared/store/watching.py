"""Watch plumbing for the embedded stores: a retained event log read by cursor.

Writers append to the log and `Notifier.notify()` every subscriber's own
`asyncio.Event`; they never wait on a watcher. Each watcher (`follow`) pulls chunks
of whole revisions after its cursor, so a slow watcher only lags (and, once it falls
behind the retained window, gets `ResyncRequired`), never blocks anyone.
"""
from __future__ import annotations

import asyncio
import bisect
from contextlib import contextmanager
from typing import AsyncGenerator, Awaitable, Callable, Iterator, Sequence

from isthmus.shared.errors import ResyncRequired, StoreUnavailable
from isthmus.shared.store.base import WatchEvent

CHUNK = 256
"""About how many events a watcher pulls per step; a batch (revision) is never split."""

FetchAfter = Callable[[int], Awaitable[Sequence[WatchEvent]]]


class Notifier:
    """Wakes every subscribed watcher; one Event per watcher, nothing shared held."""

    def __init__(self) -> None:
        self._wakers: set[asyncio.Event] = set()
        self.closed = False

    def __len__(self) -> int:
        return len(self._wakers)

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Event]:
        waker = asyncio.Event()
        self._wakers.add(waker)
        try:
            yield waker
        finally:
            self._wakers.discard(waker)

    def notify(self) -> None:
        for waker in self._wakers:
            waker.set()

    def close(self) -> None:
        self.closed = True
        self.notify()


async def follow(
    fetch_after: FetchAfter,
    notifier: Notifier,
    since_revision: int,
    kinds: set[str] | None,
    *,
    poll_interval: float | None = None,
    closed_message: str = "store closed",
) -> AsyncGenerator[WatchEvent, None]:
    """Yield events with revision > since_revision, then live ones, until closed.

    `fetch_after(cursor)` returns whole revisions after `cursor` (empty when caught
    up) or raises `ResyncRequired`. `poll_interval` also re-reads without a
    notification (the SQLite store uses it to see other processes' writes).
    """
    cursor = since_revision
    with notifier.subscribe() as waker:
        while True:
            if notifier.closed:
                raise StoreUnavailable(closed_message)
            waker.clear()  # before reading: a write after the read re-sets it
            events = await fetch_after(cursor)
            if events:
                for event in events:
                    if kinds is None or event.resource.kind in kinds:
                        yield event
                cursor = events[-1].revision
                continue
            if poll_interval is None:
                await waker.wait()
            else:
                try:
                    await asyncio.wait_for(waker.wait(), poll_interval)
                except asyncio.TimeoutError:
                    pass


class EventLog:
    """The memory store's retained history: events in revision order, bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.compacted = 0  # history at or below this revision is gone
        self._events: list[WatchEvent] = []

    def __len__(self) -> int:
        return len(self._events)

    def append(self, events: Sequence[WatchEvent]) -> None:
        self._events.extend(events)
        if len(self._events) > self.limit + max(1, self.limit // 10):
            cut = len(self._events) - self.limit  # events[:cut] go
            self.compact(self._events[cut - 1].revision)

    def compact(self, revision: int) -> None:
        """Drop events at or below `revision` (whole revisions only)."""
        if revision <= self.compacted:
            return
        cut = bisect.bisect_right(self._events, revision, key=lambda e: e.revision)
        del self._events[:cut]
        self.compacted = revision

    def after(self, cursor: int, max_events: int = CHUNK) -> list[WatchEvent]:
        if cursor < self.compacted:
            raise ResyncRequired(cursor, self.compacted + 1)
        start = bisect.bisect_right(self._events, cursor, key=lambda e: e.revision)
        if start == len(self._events):
            return []
        last = self._events[min(start + max_events, len(self._events)) - 1].revision
        end = bisect.bisect_right(self._events, last, key=lambda e: e.revision, lo=start)
        return self._events[start:end]
