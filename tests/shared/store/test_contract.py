"""The ConfigStore contract, run unchanged against memory, SQLite and etcd.

Revisions are compared with the store's own `revision()` taken at the start of a test,
never with absolute numbers: etcd's revision is shared with other keys (and tests).
"""
from __future__ import annotations

import asyncio
import random
from contextlib import aclosing
from datetime import datetime

import pytest

from isthmus.shared.errors import AlreadyExists, Conflict, InvalidConfig, NotFound, ResyncRequired, StoreUnavailable
from isthmus.shared.store.base import Action, ConfigStore, Op

from .helpers import dr, nothing_more, summary, take, vs, with_spec


# -- CRUD ---------------------------------------------------------------------------------


async def test_create_stamps_server_fields_and_advances_revision(store: ConfigStore) -> None:
    assert isinstance(store, ConfigStore)
    base = await store.revision()
    created = await store.create(vs("reviews").with_meta(resource_version="999", uid="mine"))
    assert created.meta.resource_version == str(base + 1) == str(await store.revision())
    assert created.meta.generation == 1
    assert created.meta.uid and created.meta.uid != "mine"
    datetime.strptime(created.meta.creation_timestamp, "%Y-%m-%dT%H:%M:%SZ")
    assert await store.get(created.key) == created
    other = await store.create(vs("ratings"))
    assert other.meta.uid != created.meta.uid and other.revision == base + 2


async def test_get_missing_is_none(store: ConfigStore) -> None:
    assert await store.get(vs("nope").key) is None


async def test_create_existing_raises_already_exists_and_writes_nothing(store: ConfigStore) -> None:
    await store.create(vs("reviews"))
    before = await store.revision()
    with pytest.raises(AlreadyExists, match="VirtualService default/reviews"):
        await store.create(vs("reviews", hosts=("other",)))
    assert await store.revision() == before
    assert (await store.get(vs("reviews").key)).spec["hosts"] == ["reviews"]


async def test_update_keeps_identity_and_bumps_generation_on_spec_change_only(store: ConfigStore) -> None:
    created = await store.create(vs("reviews"))
    respec = await store.update(with_spec(created, hosts=["reviews", "reviews.prod"]))
    assert respec.revision > created.revision and respec.meta.generation == 2
    assert (respec.meta.uid, respec.meta.creation_timestamp) == (created.meta.uid, created.meta.creation_timestamp)
    relabel = await store.update(respec.with_meta(labels={"team": "books"}))
    assert relabel.revision > respec.revision and relabel.meta.generation == 2
    assert await store.get(created.key) == relabel


async def test_update_missing_raises_not_found(store: ConfigStore) -> None:
    with pytest.raises(NotFound, match="VirtualService default/ghost"):
        await store.update(vs("ghost"))


async def test_update_with_stale_resource_version_conflicts(store: ConfigStore) -> None:
    first = await store.create(vs("reviews"))
    second = await store.update(with_spec(first, hosts=["b"]))
    with pytest.raises(Conflict) as raised:
        await store.update(with_spec(first, hosts=["c"]))
    message = str(raised.value)
    assert "VirtualService default/reviews" in message
    assert first.meta.resource_version in message and second.meta.resource_version in message
    assert await store.get(first.key) == second


async def test_update_without_resource_version_is_last_writer_wins(store: ConfigStore) -> None:
    first = await store.create(vs("reviews"))
    await store.update(with_spec(first, hosts=["b"]))
    last = await store.update(with_spec(first, hosts=["c"]).with_meta(resource_version=""))
    assert last.spec["hosts"] == ["c"] and last.meta.generation == 3


async def test_delete_returns_last_state_at_the_deletion_revision(store: ConfigStore) -> None:
    created = await store.create(vs("reviews"))
    deleted = await store.delete(created.key)
    assert deleted.revision == await store.revision() and deleted.revision > created.revision
    assert deleted.spec == created.spec and deleted.meta.uid == created.meta.uid
    assert await store.get(created.key) is None
    with pytest.raises(NotFound, match="VirtualService default/reviews"):
        await store.delete(created.key)


async def test_delete_with_stale_resource_version_conflicts(store: ConfigStore) -> None:
    first = await store.create(vs("reviews"))
    second = await store.update(with_spec(first, hosts=["b"]))
    with pytest.raises(Conflict, match="VirtualService default/reviews"):
        await store.delete(first.key, first.meta.resource_version)
    assert await store.get(first.key) == second
    await store.delete(first.key, second.meta.resource_version)
    assert await store.get(first.key) is None


# -- list ----------------------------------------------------------------------------------


async def test_list_is_sorted_by_key_and_filters_by_kind_and_namespace(store: ConfigStore) -> None:
    objects = [vs("b", "prod"), dr("a", "default"), vs("a", "prod"), vs("z", "default"), dr("r", "prod"),
               vs("a-b", "default"), vs("a", "default")]
    random.Random(7).shuffle(objects)
    for obj in objects:
        await store.create(obj)
    everything = await store.list()
    keys = [r.key for r in everything.items]
    assert keys == sorted(o.key for o in objects)
    assert [r.name for r in (await store.list("VirtualService")).items] == ["a", "a-b", "z", "a", "b"]
    assert [(r.kind, r.name) for r in (await store.list(namespace="prod")).items] == [
        ("DestinationRule", "r"), ("VirtualService", "a"), ("VirtualService", "b")]
    assert [r.name for r in (await store.list("VirtualService", "default")).items] == ["a", "a-b", "z"]
    assert (await store.list("Gateway")).items == ()


async def test_list_revision_is_the_store_revision_of_its_items(store: ConfigStore) -> None:
    await store.create(vs("a"))
    last = await store.create(vs("b"))
    listed = await store.list()
    assert listed.revision == last.revision == await store.revision()
    assert max(item.revision for item in listed.items) == listed.revision
    await store.create(dr("other"))
    assert (await store.list("VirtualService")).revision == await store.revision()


# -- batches -------------------------------------------------------------------------------


async def test_batch_commits_at_one_revision_with_per_op_actions(store: ConfigStore) -> None:
    old = await store.create(vs("old"))
    gone = await store.create(vs("gone"))
    base = await store.revision()
    result = await store.apply_batch([
        Op.create(vs("new")),
        Op.update(with_spec(old, hosts=["x"])),
        Op.upsert(dr("rule")),
        Op.delete(gone.key, gone.meta.resource_version),
    ])
    assert result.revision == base + 1 == await store.revision()
    assert result.actions == (Action.CREATED, Action.CONFIGURED, Action.CREATED, Action.DELETED)
    assert {r.meta.resource_version for r in result.resources} == {str(result.revision)}
    assert await store.get(gone.key) is None and (await store.get(old.key)).spec["hosts"] == ["x"]
    async with aclosing(store.watch(base)) as events:
        assert summary(await take(events, 4)) == [
            ("ADDED", "new", base + 1), ("MODIFIED", "old", base + 1),
            ("ADDED", "rule", base + 1), ("DELETED", "gone", base + 1)]


@pytest.mark.parametrize("bad", ["create-existing", "update-stale", "update-missing", "delete-missing"])
async def test_batch_with_one_failing_precondition_writes_nothing(store: ConfigStore, bad: str) -> None:
    existing = await store.create(vs("existing"))
    await store.update(with_spec(existing, hosts=["moved"]))
    base = await store.revision()
    failing, error, culprit = {
        "create-existing": (Op.create(vs("existing")), AlreadyExists, "existing"),
        "update-stale": (Op.update(with_spec(existing, hosts=["y"])), Conflict, "existing"),
        "update-missing": (Op.update(vs("ghost")), NotFound, "ghost"),
        "delete-missing": (Op.delete(vs("ghost").key), NotFound, "ghost"),
    }[bad]
    with pytest.raises(error, match=f"VirtualService default/{culprit}"):
        await store.apply_batch([Op.create(vs("first")), Op.upsert(dr("rule")), failing, Op.create(vs("last"))])
    assert await store.revision() == base
    assert [r.name for r in (await store.list()).items] == ["existing"]
    marker = await store.create(vs("marker"))
    async with aclosing(store.watch(base)) as events:
        assert summary(await take(events, 1)) == [("ADDED", "marker", marker.revision)]


async def test_upsert_creates_configures_and_skips_unchanged(store: ConfigStore) -> None:
    first = await store.apply_batch([Op.upsert(vs("reviews"))])
    assert first.actions == (Action.CREATED,)
    same = await store.apply_batch([Op.upsert(vs("reviews"))])
    assert same.actions == (Action.UNCHANGED,) and not same.changed
    assert same.revision == first.revision == await store.revision()
    assert same.resources == first.resources
    changed = await store.apply_batch([Op.upsert(vs("reviews", hosts=("b",))), Op.upsert(vs("ratings"))])
    assert changed.actions == (Action.CONFIGURED, Action.CREATED) and changed.revision == first.revision + 1
    assert changed.resources[0].meta.generation == 2


async def test_batch_rejects_the_same_key_twice(store: ConfigStore) -> None:
    base = await store.revision()
    with pytest.raises(InvalidConfig, match="VirtualService default/a"):
        await store.apply_batch([Op.create(vs("a")), Op.upsert(vs("a", hosts=("b",)))])
    assert await store.revision() == base


# -- watch ----------------------------------------------------------------------------------


async def _history(store: ConfigStore) -> list[tuple[str, str, int]]:
    a = await store.create(vs("a"))
    a2 = await store.update(with_spec(a, hosts=["a2"]))
    await store.apply_batch([Op.create(dr("r")), Op.create(vs("b"))])
    gone = await store.delete(a.key)
    assert gone.spec["hosts"] == ["a2"] and a2.revision < gone.revision
    r = a.revision
    return [("ADDED", "a", r), ("MODIFIED", "a", r + 1), ("ADDED", "r", r + 2), ("ADDED", "b", r + 2),
            ("DELETED", "a", r + 3)]


async def test_watch_from_zero_replays_everything_in_order(store: ConfigStore) -> None:
    expected = await _history(store)
    async with aclosing(store.watch(0)) as events:
        got = await take(events, len(expected))
        assert summary(got) == expected
        assert got[-1].resource.spec["hosts"] == ["a2"]  # DELETED carries the last state
        assert got[-1].resource.meta.resource_version == str(got[-1].revision)
        assert got[1].resource.meta.generation == 2
        assert await nothing_more(events)


async def test_watch_from_a_middle_revision_yields_only_later_events(store: ConfigStore) -> None:
    expected = await _history(store)
    async with aclosing(store.watch(expected[1][2])) as events:
        assert summary(await take(events, 3)) == expected[2:]
        assert await nothing_more(events)


async def test_watch_filters_kinds(store: ConfigStore) -> None:
    expected = await _history(store)
    async with aclosing(store.watch(0, kinds={"DestinationRule"})) as events:
        assert summary(await take(events, 1)) == [expected[2]]
        assert await nothing_more(events)
    async with aclosing(store.watch(0, kinds={"DestinationRule", "VirtualService"})) as events:
        assert summary(await take(events, 5)) == expected


async def test_watch_then_live_events(store: ConfigStore) -> None:
    base = await store.revision()
    async with aclosing(store.watch(base)) as events:
        pending = asyncio.ensure_future(take(events, 2))
        await asyncio.sleep(0.1)
        created = await store.create(vs("live"))
        await store.delete(created.key)
        got = await pending
    assert summary(got) == [("ADDED", "live", base + 1), ("DELETED", "live", base + 2)]


async def test_reconnecting_with_last_revision_misses_nothing_under_concurrent_writes(store: ConfigStore) -> None:
    base = await store.revision()
    written: list[int] = []

    async def writer() -> None:
        for i in range(120):
            if i % 3 == 2:
                result = await store.apply_batch([Op.upsert(vs(f"o{i - 1}", hosts=(f"h{i}",)))])
                written.append(result.revision)
            else:
                written.append((await store.create(vs(f"o{i}"))).revision)
            if i % 10 == 0:
                await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    seen: list[int] = []
    cursor, rng = base, random.Random(3)
    async with asyncio.timeout(30):
        while len(seen) < 120:
            async with aclosing(store.watch(cursor)) as events:  # a fresh "connection" each round
                for event in await take(events, min(rng.randint(1, 15), 120 - len(seen))):
                    seen.append(event.revision)
                    cursor = event.revision
        await task
    assert seen == written == sorted(set(written))


async def test_events_are_ordered_by_revision_and_by_op_within_a_batch(store: ConfigStore) -> None:
    base = await store.revision()
    await store.apply_batch([Op.create(vs("z")), Op.create(vs("a")), Op.create(dr("m"))])
    await store.apply_batch([Op.delete(vs("a").key), Op.upsert(vs("z", hosts=("q",)))])
    await store.create(vs("b"))
    async with aclosing(store.watch(base)) as events:
        got = summary(await take(events, 6))
    assert got == [("ADDED", "z", base + 1), ("ADDED", "a", base + 1), ("ADDED", "m", base + 1),
                   ("DELETED", "a", base + 2), ("MODIFIED", "z", base + 2), ("ADDED", "b", base + 3)]


async def test_compaction_makes_older_watches_resync(fresh_store: ConfigStore) -> None:
    store = fresh_store
    base = await store.revision()
    for name in "abcde":
        await store.create(vs(name))
    await store.compact(base + 3)
    for since in (0, base + 1, base + 2):
        with pytest.raises(ResyncRequired) as raised:
            async with aclosing(store.watch(since)) as events:
                await take(events, 1)
        assert raised.value.requested == since and raised.value.compacted >= base + 4  # oldest kept
    async with aclosing(store.watch(base + 3)) as events:
        assert summary(await take(events, 2)) == [("ADDED", "d", base + 4), ("ADDED", "e", base + 5)]
    listed = await store.list()  # the resync path: list, then watch from the list's revision
    assert len(listed.items) == 5
    async with aclosing(store.watch(listed.revision)) as events:
        await store.create(vs("f"))
        assert summary(await take(events, 1)) == [("ADDED", "f", base + 6)]


async def test_slow_watcher_blocks_neither_writers_nor_a_fast_watcher(store: ConfigStore) -> None:
    base = await store.revision()
    async with aclosing(store.watch(base)) as slow, aclosing(store.watch(base)) as fast:
        first = await store.create(vs("first"))
        assert summary(await take(slow, 1)) == [("ADDED", "first", first.revision)]  # subscribed; now it stalls
        fast_got = asyncio.ensure_future(take(fast, 501, timeout=40))
        async with asyncio.timeout(30):
            current = first
            for i in range(500):
                current = await store.update(with_spec(current, hosts=[f"h{i}"]))
        got = await fast_got
        assert [e.revision for e in got] == list(range(base + 1, base + 502))
        assert got[-1].resource == current
        assert summary(await take(slow, 1)) == [("MODIFIED", "first", base + 2)]  # lagging, not lost


async def test_closing_a_pending_watch_releases_it(store: ConfigStore) -> None:
    base = await store.revision()
    events = store.watch(base)
    waiting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(events.aclose(), 5)
    created = await asyncio.wait_for(store.create(vs("after")), 5)
    async with aclosing(store.watch(base)) as again:
        assert summary(await take(again, 1)) == [("ADDED", "after", created.revision)]


async def test_a_closed_store_says_so(store: ConfigStore) -> None:
    events = store.watch(await store.revision())
    waiting = asyncio.ensure_future(take(events, 1))
    await asyncio.sleep(0.1)
    await store.close()
    with pytest.raises(StoreUnavailable):
        await waiting
    with pytest.raises(StoreUnavailable):
        await store.get(vs("a").key)
    await store.close()  # idempotent
