"""Pure batch semantics shared by every backend: ops + current state → changes.

`plan_batch` checks every precondition against the state the backend read (raising
`AlreadyExists`/`NotFound`/`Conflict` naming the object, before anything is written)
and computes the new objects; `stamp` fills in the revision the backend committed at
and derives the result and the watch events. No I/O, no clock unless passed in.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence

from isthmus.shared.config.resource import Resource, ResourceKey
from isthmus.shared.errors import AlreadyExists, Conflict, InvalidConfig, NotFound
from isthmus.shared.store.base import Action, BatchResult, EventType, Op, OpType, WatchEvent


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Change:
    """One op's outcome before the revision is known. `after` is what to store
    (resource_version not yet set); `before` is the stored state it replaces."""

    action: Action
    key: ResourceKey
    before: Resource | None
    after: Resource | None

    @property
    def writes(self) -> bool:
        return self.action is not Action.UNCHANGED


def batch_keys(ops: Sequence[Op]) -> tuple[ResourceKey, ...]:
    """The keys a batch touches, in op order; a key may appear only once."""
    seen: set[ResourceKey] = set()
    for op in ops:
        if op.key in seen:
            raise InvalidConfig([f"{op.key}: appears more than once in one batch; merge the ops"])
        seen.add(op.key)
    return tuple(op.key for op in ops)


def plan_batch(
    ops: Sequence[Op],
    current: Mapping[ResourceKey, Resource | None],
    *,
    now: Callable[[], str] = now_rfc3339,
    uid: Callable[[], str] = new_uid,
) -> tuple[Change, ...]:
    """Decide every op against `current` (stored state of each key, None = absent)."""
    batch_keys(ops)
    return tuple(_plan_one(op, current.get(op.key), now, uid) for op in ops)


def _plan_one(op: Op, stored: Resource | None, now: Callable[[], str], uid: Callable[[], str]) -> Change:
    key = op.key
    if op.type is OpType.CREATE:
        if stored is not None:
            raise AlreadyExists(
                f"{key} already exists (resourceVersion {stored.meta.resource_version}); "
                "update it, or delete it first"
            )
        return Change(Action.CREATED, key, None, _fresh(op.resource, now(), uid()))
    if stored is None:
        if op.type is OpType.UPSERT and not op.expected_version:
            return Change(Action.CREATED, key, None, _fresh(op.resource, now(), uid()))
        raise NotFound(f"{key} not found; create it first" if op.type is not OpType.DELETE else f"{key} not found")
    _check_version(op, stored)
    if op.type is OpType.DELETE:
        return Change(Action.DELETED, key, stored, None)
    assert op.resource is not None
    if op.type is OpType.UPSERT and op.resource.same_content(stored):
        return Change(Action.UNCHANGED, key, stored, stored)
    return Change(Action.CONFIGURED, key, stored, _updated(op.resource, stored))


def _check_version(op: Op, stored: Resource) -> None:
    if op.expected_version and op.expected_version != stored.meta.resource_version:
        raise Conflict(
            f"{op.key}: resourceVersion {op.expected_version} is stale (stored is "
            f"{stored.meta.resource_version}); get the object again and retry the {op.type.value}"
        )


def _fresh(resource: Resource | None, created: str, uid: str) -> Resource:
    assert resource is not None
    return resource.with_meta(resource_version="", creation_timestamp=created, generation=1, uid=uid)


def _updated(resource: Resource, stored: Resource) -> Resource:
    spec_changed = resource.spec_json() != stored.spec_json()
    return resource.with_meta(
        resource_version="",
        creation_timestamp=stored.meta.creation_timestamp,
        uid=stored.meta.uid,
        generation=stored.meta.generation + (1 if spec_changed else 0),
    )


def stamp(
    changes: Sequence[Change], revision: int
) -> tuple[BatchResult, tuple[WatchEvent, ...]]:
    """Set the committed revision on every written object; derive result and events.

    `revision` is the batch's commit revision (or the current one if nothing writes).
    """
    rv = str(revision)
    resources: list[Resource] = []
    events: list[WatchEvent] = []
    for change in changes:
        if change.action is Action.UNCHANGED:
            assert change.before is not None
            resources.append(change.before)
            continue
        if change.action is Action.DELETED:
            assert change.before is not None
            gone = change.before.with_meta(resource_version=rv)
            resources.append(gone)
            events.append(WatchEvent(EventType.DELETED, gone, revision))
            continue
        assert change.after is not None
        stored = change.after.with_meta(resource_version=rv)
        resources.append(stored)
        kind = EventType.ADDED if change.action is Action.CREATED else EventType.MODIFIED
        events.append(WatchEvent(kind, stored, revision))
    result = BatchResult(tuple(resources), tuple(c.action for c in changes), revision)
    return result, tuple(events)
