"""The ConfigStore contract: revisioned objects keyed by (kind, namespace, name), with watch.

Every write (one create/update/delete, or one whole `apply_batch`) advances one
store-wide, monotonically increasing integer revision; a stored object's
`meta.resource_version` is `str(revision of its last write)`. Stores also set
`creation_timestamp` (RFC 3339, kept on update), `uid` (random, on create) and
`generation` (1 on create, +1 when the spec changes). `watch(since)` yields every
event with revision > since in revision order, then live events; history older than
the retained window raises `ResyncRequired` (list again, watch from the list's
revision). Revisions are dense in the embedded stores and only monotonic in etcd.
"""
from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from typing import AsyncGenerator, Protocol, Sequence, runtime_checkable

from isthmus.shared.config.resource import Resource, ResourceKey

DEFAULT_HISTORY_LIMIT = 10_000
"""Events the embedded stores keep for watch resumption; older ones are compacted."""


class OpType(str, enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    UPSERT = "upsert"
    DELETE = "delete"


class Action(str, enum.Enum):
    """What a batch op did, in kubectl's words."""

    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


class EventType(str, enum.Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class Op:
    """One write in a batch. `expected_version` ("" = any) is the resourceVersion
    the caller last saw; a mismatch fails the whole batch with `Conflict`."""

    type: OpType
    key: ResourceKey
    resource: Resource | None = None
    expected_version: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", OpType(self.type))
        if self.type is not OpType.DELETE and self.resource is None:
            raise ValueError(f"{self.type.value} op for {self.key} needs a resource")
        if self.resource is not None and self.resource.key != self.key:
            raise ValueError(f"op key {self.key} does not match its resource {self.resource.key}")

    @classmethod
    def create(cls, resource: Resource) -> "Op":
        return cls(OpType.CREATE, resource.key, resource)

    @classmethod
    def update(cls, resource: Resource, expected_version: str | None = None) -> "Op":
        expected = resource.meta.resource_version if expected_version is None else expected_version
        return cls(OpType.UPDATE, resource.key, resource, expected)

    @classmethod
    def upsert(cls, resource: Resource, expected_version: str | None = None) -> "Op":
        expected = resource.meta.resource_version if expected_version is None else expected_version
        return cls(OpType.UPSERT, resource.key, resource, expected)

    @classmethod
    def delete(cls, key: ResourceKey, expected_version: str = "") -> "Op":
        return cls(OpType.DELETE, key, None, expected_version)


@dataclass(frozen=True)
class BatchResult:
    """Per op (in op order): the stored resource (for a delete, its last state stamped
    with the deletion's revision) and the action; `revision` is the batch's revision,
    or the unchanged store revision when nothing was written."""

    resources: tuple[Resource, ...]
    actions: tuple[Action, ...]
    revision: int

    @property
    def changed(self) -> bool:
        return any(a is not Action.UNCHANGED for a in self.actions)


@dataclass(frozen=True)
class ListResult:
    """Items sorted by key, exactly as they were at store revision `revision`."""

    items: tuple[Resource, ...]
    revision: int


@dataclass(frozen=True)
class WatchEvent:
    """A change at `revision`. DELETED carries the object's last state, with
    `resource_version` set to the deletion's revision."""

    type: EventType
    resource: Resource
    revision: int


@runtime_checkable
class ConfigStore(Protocol):
    """What galley, pilot and the CLI need from a store; see the module docstring."""

    async def create(self, resource: Resource) -> Resource: ...

    async def update(self, resource: Resource) -> Resource: ...

    async def delete(self, key: ResourceKey, resource_version: str = "") -> Resource: ...

    async def get(self, key: ResourceKey) -> Resource | None: ...

    async def list(self, kind: str | None = None, namespace: str | None = None) -> ListResult: ...

    async def revision(self) -> int: ...

    async def apply_batch(self, ops: Sequence[Op]) -> BatchResult: ...

    def watch(self, since_revision: int, kinds: set[str] | None = None) -> AsyncGenerator[WatchEvent, None]:
        """Async generator (close it with `aclose()`/`contextlib.aclosing`); `ResyncRequired`
        surfaces on the first step, or later if the watcher falls out of retained history."""
        ...

    async def compact(self, revision: int) -> None:
        """Drop history at or below `revision`; watching from since >= revision keeps working.

        A watch from an older revision raises `ResyncRequired` whose `compacted` is the
        oldest revision still kept. etcd compaction is cluster-wide, and compacting at
        etcd's current revision keeps that revision's events (etcd cannot go further).
        """
        ...

    async def close(self) -> None: ...


class SingleOpsMixin(abc.ABC):
    """create/update/delete as one-op batches, so every backend has one write path."""

    @abc.abstractmethod
    async def apply_batch(self, ops: Sequence[Op]) -> BatchResult:
        """The backend's one write path (all-or-nothing)."""

    async def create(self, resource: Resource) -> Resource:
        return (await self.apply_batch([Op.create(resource)])).resources[0]

    async def update(self, resource: Resource) -> Resource:
        return (await self.apply_batch([Op.update(resource)])).resources[0]

    async def delete(self, key: ResourceKey, resource_version: str = "") -> Resource:
        return (await self.apply_batch([Op.delete(key, resource_version)])).resources[0]
