"""In-memory ConfigStore for tests and single-process tools.

Dense revisions starting at 1; every method runs synchronously on the event loop, so
each batch is atomic by construction. History keeps the last `history_limit` events
(10 000 by default); watching from before that raises `ResyncRequired`.
"""
from __future__ import annotations

from typing import AsyncGenerator, Sequence

from isthmus.shared.config.resource import Resource, ResourceKey
from isthmus.shared.errors import StoreUnavailable
from isthmus.shared.store.base import (
    DEFAULT_HISTORY_LIMIT,
    BatchResult,
    EventType,
    ListResult,
    Op,
    SingleOpsMixin,
    WatchEvent,
)
from isthmus.shared.store.batch_plan import batch_keys, plan_batch, stamp
from isthmus.shared.store.watching import EventLog, Notifier, follow


class MemoryStore(SingleOpsMixin):
    def __init__(self, history_limit: int = DEFAULT_HISTORY_LIMIT) -> None:
        self._objects: dict[ResourceKey, Resource] = {}
        self._revision = 0
        self._log = EventLog(history_limit)
        self._notifier = Notifier()

    def __repr__(self) -> str:
        return (
            f"<MemoryStore revision={self._revision} objects={len(self._objects)} "
            f"events={len(self._log)} watchers={len(self._notifier)}>"
        )

    def _check_open(self) -> None:
        if self._notifier.closed:
            raise StoreUnavailable("memory store is closed")

    async def apply_batch(self, ops: Sequence[Op]) -> BatchResult:
        self._check_open()
        current = {key: self._objects.get(key) for key in batch_keys(ops)}
        changes = plan_batch(ops, current)
        if not any(change.writes for change in changes):
            return stamp(changes, self._revision)[0]
        revision = self._revision + 1
        result, events = stamp(changes, revision)
        for event in events:
            if event.type is EventType.DELETED:
                del self._objects[event.resource.key]
            else:
                self._objects[event.resource.key] = event.resource
        self._revision = revision
        self._log.append(events)
        self._notifier.notify()
        return result

    async def get(self, key: ResourceKey) -> Resource | None:
        self._check_open()
        return self._objects.get(key)

    async def list(self, kind: str | None = None, namespace: str | None = None) -> ListResult:
        self._check_open()
        items = tuple(
            self._objects[key]
            for key in sorted(self._objects)
            if (kind is None or key.kind == kind) and (namespace is None or key.namespace == namespace)
        )
        return ListResult(items, self._revision)

    async def revision(self) -> int:
        self._check_open()
        return self._revision

    def watch(self, since_revision: int, kinds: set[str] | None = None) -> AsyncGenerator[WatchEvent, None]:
        async def fetch_after(cursor: int) -> list[WatchEvent]:
            return self._log.after(cursor)

        return follow(fetch_after, self._notifier, since_revision, kinds, closed_message="memory store is closed")

    async def compact(self, revision: int) -> None:
        self._check_open()
        if revision > self._revision:
            raise ValueError(f"cannot compact at revision {revision}: the store is at {self._revision}")
        self._log.compact(revision)

    async def close(self) -> None:
        self._notifier.close()
