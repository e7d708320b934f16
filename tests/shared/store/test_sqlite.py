"""SQLite store specifics: durability across restarts and processes, bounded history."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from contextlib import aclosing
from pathlib import Path

import pytest

from isthmus.shared.errors import ResyncRequired, StoreUnavailable
from isthmus.shared.store import Op, open_store
from isthmus.shared.store.sqlite import SqliteStore

from .helpers import dr, summary, take, vs, with_spec

WATCHER_SCRIPT = """
import asyncio, json, sys
from isthmus.shared.store.sqlite import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    events = store.watch(int(sys.argv[2]))
    out = []
    async with asyncio.timeout(20):
        while len(out) < int(sys.argv[3]):
            event = await anext(events)
            out.append([event.type.value, event.resource.name, event.revision])
    await events.aclose()
    await store.close()
    print(json.dumps(out))

asyncio.run(main())
"""


async def _write_history(store: SqliteStore) -> list[tuple[str, str, int]]:
    a = await store.create(vs("a"))
    await store.update(with_spec(a, hosts=["a2"]))
    await store.apply_batch([Op.create(dr("r")), Op.create(vs("b"))])
    await store.delete(a.key)
    return [("ADDED", "a", 1), ("MODIFIED", "a", 2), ("ADDED", "r", 3), ("ADDED", "b", 3), ("DELETED", "a", 4)]


async def test_file_is_wal_and_revisions_are_dense(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    assert await store.revision() == 0
    await _write_history(store)
    assert await store.revision() == 4
    await store.close()
    with sqlite3.connect(tmp_path / "store.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_restart_keeps_objects_revision_and_history(tmp_path: Path) -> None:
    path = tmp_path / "state" / "store.db"  # parent directories are created
    store = SqliteStore(path)
    expected = await _write_history(store)
    before = await store.list()
    await store.close()

    reopened = open_store(f"sqlite://{path}")
    assert isinstance(reopened, SqliteStore)
    assert await reopened.list() == before and before.revision == 4
    assert await reopened.revision() == 4
    async with aclosing(reopened.watch(1)) as events:
        assert summary(await take(events, 4)) == expected[1:]
        created = await reopened.create(vs("c"))
        assert created.revision == 5
        assert summary(await take(events, 1)) == [("ADDED", "c", 5)]
    await reopened.close()


async def test_another_process_replays_retained_history(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    expected = await _write_history(store)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WATCHER_SCRIPT, str(path), "1", "5",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    await asyncio.sleep(0.5)
    await store.create(vs("late"))  # live, seen by the other process's poll
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert [tuple(e) for e in json.loads(out)] == expected[1:] + [("ADDED", "late", 5)]
    await store.close()


async def test_history_retention_is_bounded_and_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path, history_limit=20)
    for i in range(60):
        await store.create(vs(f"o{i}"))
    await store.close()
    with sqlite3.connect(path) as db:
        kept = db.execute("SELECT COUNT(*), MIN(revision) FROM events").fetchone()
    assert 20 <= kept[0] <= 22 and kept[1] > 30

    reopened = SqliteStore(path, history_limit=20)
    with pytest.raises(ResyncRequired) as raised:
        await take(reopened.watch(5), 1)
    assert raised.value.compacted == kept[1]  # the oldest revision still kept
    async with aclosing(reopened.watch(50)) as events:
        assert [e.revision for e in await take(events, 10)] == list(range(51, 61))
    assert len((await reopened.list()).items) == 60
    await reopened.close()


async def test_unopenable_file_is_store_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)  # a directory, not a database file
    with pytest.raises(StoreUnavailable, match=str(tmp_path)):
        await store.revision()
    await store.close()
