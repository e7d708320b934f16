"""Memory store specifics: dense revisions from 1, bounded history, watcher bookkeeping."""
from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from isthmus.shared.errors import ResyncRequired
from isthmus.shared.store.memory import MemoryStore

from .helpers import take, vs


async def test_revisions_are_dense_and_start_at_one() -> None:
    store = MemoryStore()
    assert await store.revision() == 0
    revisions = [(await store.create(vs(f"o{i}"))).revision for i in range(3)]
    assert revisions == [1, 2, 3]
    assert (await store.list()).revision == 3


async def test_history_is_bounded_and_older_watches_resync() -> None:
    store = MemoryStore(history_limit=10)
    for i in range(30):
        await store.create(vs(f"o{i}"))
    with pytest.raises(ResyncRequired) as raised:
        await take(store.watch(0), 1)
    assert raised.value.requested == 0 and 0 < raised.value.compacted <= 21
    async with aclosing(store.watch(20)) as events:
        assert [e.revision for e in await take(events, 10)] == list(range(21, 31))


async def test_a_watcher_that_falls_out_of_the_window_resyncs() -> None:
    store = MemoryStore(history_limit=10)
    async with aclosing(store.watch(0)) as lagging:
        await store.create(vs("first"))
        await take(lagging, 1)
        for i in range(40):
            await store.create(vs(f"o{i}"))
        with pytest.raises(ResyncRequired):
            await take(lagging, 1)


async def test_closed_watchers_unsubscribe() -> None:
    store = MemoryStore()
    events = store.watch(0)
    pending = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    assert "watchers=1" in repr(store)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await events.aclose()
    assert "watchers=0" in repr(store)


async def test_compacting_the_future_is_refused() -> None:
    store = MemoryStore()
    await store.create(vs("a"))
    with pytest.raises(ValueError, match="store is at 1"):
        await store.compact(5)
