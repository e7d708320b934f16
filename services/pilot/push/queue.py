"""The push queue: connections waiting for a push, FIFO, one merged PushRequest each.

Istio's PushQueue: `enqueue(con, req)` merges into a waiting entry with the same
`PushRequest.merge` the debouncer uses; a connection being pushed to is never handed
out twice — what arrives meanwhile is merged and re-queued by `mark_done`. Workers
`await dequeue()`; `close()` wakes them with None. Single event loop, no locks.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, Hashable, TypeVar

from isthmus.pilot.push.request import PushRequest, merge

K = TypeVar("K", bound=Hashable)

_NOTHING = object()


class PushQueue(Generic[K]):
    def __init__(self) -> None:
        self._order: deque[K] = deque()
        self._pending: dict[K, PushRequest] = {}
        # key -> request that arrived while the key was being pushed (None: nothing yet)
        self._processing: dict[K, PushRequest | None] = {}
        self._ready = asyncio.Event()
        self._closed = False

    def enqueue(self, key: K, req: PushRequest) -> None:
        if key in self._processing:
            self._processing[key] = merge(self._processing[key], req)
            return
        if key in self._pending:
            self._pending[key] = merge(self._pending[key], req)
            return
        self._pending[key] = req
        self._order.append(key)
        self._ready.set()

    async def dequeue(self) -> tuple[K, PushRequest] | None:
        """The oldest waiting key and its merged request; None once closed."""
        while not self._order:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        if self._closed:
            return None
        key = self._order.popleft()
        req = self._pending.pop(key)
        self._processing[key] = None
        if self._order:
            self._ready.set()
        return key, req

    def mark_done(self, key: K) -> None:
        """The push to `key` finished: re-queue anything that arrived meanwhile."""
        later = self._processing.pop(key, _NOTHING)
        if later is not _NOTHING and later is not None:
            self.enqueue(key, later)

    def remove(self, key: K) -> None:
        """Forget a disconnected key (waiting or in progress)."""
        if self._pending.pop(key, None) is not None:
            self._order.remove(key)
        self._processing.pop(key, None)

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def pending(self, key: K) -> PushRequest | None:
        return self._pending.get(key)

    def __len__(self) -> int:
        return len(self._order)

    @property
    def in_progress(self) -> int:
        return len(self._processing)

    def __repr__(self) -> str:
        return f"<PushQueue [{len(self._order)} waiting, {len(self._processing)} in progress]>"
