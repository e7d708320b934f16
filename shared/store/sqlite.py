"""Embedded, durable ConfigStore in one SQLite file (the local-mode default).

Objects, the revision counter and a bounded event log (last `history_limit` events)
live in the file, so a restarted process, or a second process opening the same file,
resumes watches from any retained revision. One connection on one dedicated thread
does every sqlite3 call (the event loop only awaits it), so writes are serialised and
each batch is one `BEGIN IMMEDIATE` transaction. Same-process watchers are woken on
commit; they also re-read every `poll_interval` seconds to see other processes' writes.

Durability: WAL with `synchronous=FULL`. Config writes are rare and small, so the
extra fsync per commit is cheap, and it means a revision a watcher has seen can never
be lost and reused for different content after a power failure (NORMAL in WAL mode
may drop the last commits on power loss, though never on a process crash).
"""
from __future__ import annotations

import asyncio
import functools
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import AsyncGenerator, Callable, Sequence, TypeVar

from isthmus.shared.config.resource import Resource, ResourceKey
from isthmus.shared.errors import ResyncRequired, StoreUnavailable
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
from isthmus.shared.store.watching import CHUNK, Notifier, follow

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
"""


class SqliteStore(SingleOpsMixin):
    def __init__(
        self,
        path: str | Path,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        poll_interval: float | None = 1.0,
    ) -> None:
        self.path = str(path)
        self.history_limit = history_limit
        self.poll_interval = poll_interval
        self._db: sqlite3.Connection | None = None
        self._open_error: Exception | None = None
        self._event_count = 0  # only touched on the store thread
        self._notifier = Notifier()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="isthmus-sqlite")
        self._executor.submit(self._open)  # first job on the thread: every call runs after it

    def __repr__(self) -> str:
        return f"<SqliteStore {self.path} watchers={len(self._notifier)}>"

    # -- the store thread -------------------------------------------------------------

    def _open(self) -> None:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(SCHEMA)
            self._event_count = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            self._db = db
        except (sqlite3.Error, OSError) as exc:
            self._open_error = exc

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {self._open_error}")
        return self._db

    def _in_txn(self, begin: str, body: Callable[[sqlite3.Connection], T]) -> T:
        db = self._conn()
        db.execute(begin)
        try:
            result = body(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    @staticmethod
    def _meta(db: sqlite3.Connection, name: str) -> int:
        return db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]

    @staticmethod
    def _get(db: sqlite3.Connection, key: ResourceKey) -> Resource | None:
        row = db.execute(
            "SELECT record FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
            (key.kind, key.namespace, key.name),
        ).fetchone()
        return Resource.from_record(row[0]) if row else None

    def _apply(self, ops: Sequence[Op]) -> tuple[BatchResult, bool]:
        def body(db: sqlite3.Connection) -> tuple[BatchResult, bool]:
            changes = plan_batch(ops, {key: self._get(db, key) for key in batch_keys(ops)})
            revision = self._meta(db, "revision")
            if not any(change.writes for change in changes):
                return stamp(changes, revision)[0], False
            result, events = stamp(changes, revision + 1)
            for seq, event in enumerate(events):
                key, record = event.resource.key, event.resource.to_record()
                if event.type is EventType.DELETED:
                    db.execute(
                        "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                        (key.kind, key.namespace, key.name),
                    )
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO objects (kind, namespace, name, record) VALUES (?, ?, ?, ?)",
                        (key.kind, key.namespace, key.name, record),
                    )
                db.execute(
                    "INSERT INTO events (revision, seq, type, record) VALUES (?, ?, ?, ?)",
                    (event.revision, seq, event.type.value, record),
                )
            db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision + 1,))
            self._event_count += len(events)
            if self._event_count > self.history_limit + max(1, self.history_limit // 10):
                self._trim_history(db)
            return result, True

        try:
            return self._in_txn("BEGIN IMMEDIATE", body)
        except BaseException:
            if self._db is not None:  # rolled back: recount what is really there
                self._event_count = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            raise

    def _trim_history(self, db: sqlite3.Connection) -> None:
        row = db.execute(
            "SELECT revision FROM events ORDER BY revision DESC, seq DESC LIMIT 1 OFFSET ?",
            (self.history_limit,),
        ).fetchone()
        if row is not None:
            self._drop_history(db, row[0])

    def _drop_history(self, db: sqlite3.Connection, revision: int) -> None:
        db.execute("DELETE FROM events WHERE revision <= ?", (revision,))
        db.execute("UPDATE meta SET value = MAX(value, ?) WHERE name = 'compacted'", (revision,))
        self._event_count = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def _compact(self, revision: int) -> None:
        def body(db: sqlite3.Connection) -> None:
            current = self._meta(db, "revision")
            if revision > current:
                raise ValueError(f"cannot compact at revision {revision}: the store is at {current}")
            self._drop_history(db, revision)

        self._in_txn("BEGIN IMMEDIATE", body)

    def _list(self, kind: str | None, namespace: str | None) -> ListResult:
        def body(db: sqlite3.Connection) -> ListResult:
            revision = self._meta(db, "revision")
            rows = db.execute(
                "SELECT record FROM objects WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR namespace = ?2)"
                " ORDER BY kind, namespace, name",
                (kind, namespace),
            ).fetchall()
            return ListResult(tuple(Resource.from_record(row[0]) for row in rows), revision)

        return self._in_txn("BEGIN", body)

    def _events_after(self, cursor: int) -> list[WatchEvent]:
        def body(db: sqlite3.Connection) -> list[tuple[int, str, str]]:
            compacted = self._meta(db, "compacted")
            if cursor < compacted:
                raise ResyncRequired(cursor, compacted + 1)
            query = "SELECT revision, type, record FROM events WHERE revision > ? ORDER BY revision, seq LIMIT ?"
            rows = db.execute(query, (cursor, CHUNK + 1)).fetchall()
            if len(rows) > CHUNK:  # never hand out part of a revision
                last = rows[-1][0]
                rows = [row for row in rows if row[0] != last] or db.execute(
                    "SELECT revision, type, record FROM events WHERE revision = ? ORDER BY seq", (last,)
                ).fetchall()
            return rows

        rows = self._in_txn("BEGIN", body)
        return [WatchEvent(EventType(kind), Resource.from_record(record), rev) for rev, kind, record in rows]

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- the event loop side ----------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._notifier.closed:
            raise StoreUnavailable(f"SQLite store {self.path} is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
        except RuntimeError as exc:  # executor shut down under us
            raise StoreUnavailable(f"SQLite store {self.path} is closed") from exc

    async def apply_batch(self, ops: Sequence[Op]) -> BatchResult:
        result, wrote = await self._run(self._apply, tuple(ops))
        if wrote:
            self._notifier.notify()
        return result

    async def get(self, key: ResourceKey) -> Resource | None:
        return await self._run(lambda: self._get(self._conn(), key))

    async def list(self, kind: str | None = None, namespace: str | None = None) -> ListResult:
        return await self._run(self._list, kind, namespace)

    async def revision(self) -> int:
        return await self._run(lambda: self._meta(self._conn(), "revision"))

    def watch(self, since_revision: int, kinds: set[str] | None = None) -> AsyncGenerator[WatchEvent, None]:
        async def fetch_after(cursor: int) -> list[WatchEvent]:
            return await self._run(self._events_after, cursor)

        return follow(
            fetch_after,
            self._notifier,
            since_revision,
            kinds,
            poll_interval=self.poll_interval,
            closed_message=f"SQLite store {self.path} is closed",
        )

    async def compact(self, revision: int) -> None:
        await self._run(self._compact, revision)

    async def close(self) -> None:
        if self._notifier.closed:
            return
        self._notifier.close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)
