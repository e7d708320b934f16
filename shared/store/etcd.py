"""ConfigStore on etcd v3 (through aetcd) for multi-machine deployments.

An object lives at `<prefix>/<kind>/<namespace>/<name>`; its value is
`Resource.to_record()` without `resourceVersion`, which is the key's `mod_revision`;
the store revision is etcd's (monotonic, not dense: other writers advance it too).
Every write, single or batch, is one etcd transaction guarded by `mod_revision`
compares of every key it read, retried on a concurrent change, so preconditions are
checked against the state the write commits over. Watches are etcd watches from
`since + 1` on the prefix; a compacted revision raises `ResyncRequired`; a lost
connection raises `StoreUnavailable` naming the address (the next call fails over to
the next endpoint). Compaction is etcd-wide, not per prefix.
"""
from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import AsyncGenerator, Awaitable, Callable, Sequence, TypeVar

import aetcd
from aetcd import rpc

from isthmus.shared.config.resource import Meta, Resource, ResourceKey
from isthmus.shared.errors import Conflict, InvalidConfig, ResyncRequired, StoreUnavailable
from isthmus.shared.store.base import (
    Action,
    BatchResult,
    EventType,
    ListResult,
    Op,
    SingleOpsMixin,
    WatchEvent,
)
from isthmus.shared.store.batch_plan import batch_keys, plan_batch, stamp

T = TypeVar("T")

CONNECTION_ERRORS = (
    aetcd.ConnectionFailedError,
    aetcd.ConnectionTimeoutError,
    aetcd.WatchTimeoutError,
    asyncio.TimeoutError,
    OSError,
)
UNREACHABLE_CODES = (rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.DEADLINE_EXCEEDED)
GRPC_OPTIONS = {"grpc.max_receive_message_length": 256 * 1024 * 1024}


class EtcdStore(SingleOpsMixin):
    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        prefix: str = "/isthmus",
        *,
        timeout: float = 5.0,
        max_txn_ops: int = 128,
        max_attempts: int = 16,
    ) -> None:
        if not endpoints:
            raise ValueError("etcd store needs at least one host:port endpoint")
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.timeout = timeout
        self.max_txn_ops = max_txn_ops  # etcd's --max-txn-ops (default 128)
        self.max_attempts = max_attempts
        self._endpoints = list(endpoints)
        self._active = 0
        self._clients: dict[int, aetcd.Client] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"<EtcdStore {self.address} prefix={self.prefix or '/'}>"

    @property
    def address(self) -> str:
        host, port = self._endpoints[self._active]
        return f"{host}:{port}"

    # -- keys and values ----------------------------------------------------------------

    def _key(self, key: ResourceKey) -> bytes:
        return f"{self.prefix}/{key.kind}/{key.namespace}/{key.name}".encode()

    def _range(self, kind: str | None = None, namespace: str | None = None) -> bytes:
        """The key prefix holding one kind (in one namespace), or everything."""
        parts = [self.prefix]
        if kind is not None:
            parts.append(kind)
            if namespace is not None:
                parts.append(namespace)
        return ("/".join(parts) + "/").encode()

    @staticmethod
    def _value(resource: Resource) -> bytes:
        return resource.with_meta(resource_version="").to_record().encode()

    @staticmethod
    def _resource(kv: rpc.KeyValue | aetcd.KeyValue, revision: int | None = None) -> Resource:
        rv = kv.mod_revision if revision is None else revision
        return Resource.from_record(kv.value).with_meta(resource_version=str(rv))

    def _key_only(self, raw_key: bytes, revision: int) -> Resource:
        kind, namespace, name = raw_key.decode()[len(self.prefix) + 1 :].split("/", 2)
        return Resource(kind, "", Meta(name=name, namespace=namespace, resource_version=str(revision)), {})

    # -- transport ------------------------------------------------------------------------

    def _client(self) -> aetcd.Client:
        if self._closed:
            raise StoreUnavailable(f"etcd store for {self.address} is closed")
        client = self._clients.get(self._active)
        if client is None:
            host, port = self._endpoints[self._active]
            client = aetcd.Client(host, port, timeout=self.timeout, options=GRPC_OPTIONS)
            self._clients[self._active] = client
        return client

    def _unavailable(self, address: str, exc: BaseException) -> StoreUnavailable:
        self._active = (self._active + 1) % len(self._endpoints)  # next call tries the next endpoint
        detail = exc.details() if isinstance(exc, rpc.AioRpcError) else (str(exc) or type(exc).__name__)
        return StoreUnavailable(f"etcd at {address} is unavailable ({detail}); check that etcd is running and reachable")

    async def _rpc(self, call: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        client, address = self._client(), self.address
        try:
            await client.connect()
            return await call(client)
        except CONNECTION_ERRORS as exc:
            raise self._unavailable(address, exc) from exc
        except rpc.AioRpcError as exc:  # raw stub calls (aetcd wraps its own)
            if exc.code() in UNREACHABLE_CODES:
                raise self._unavailable(address, exc) from exc
            raise StoreUnavailable(f"etcd at {address} rejected the request: {exc.details()}") from exc
        except aetcd.ClientError as exc:
            raise StoreUnavailable(f"etcd at {address} rejected the request: {exc}") from exc

    async def _txn(self, request: rpc.TxnRequest) -> rpc.TxnResponse:
        # aetcd's transaction() drops the response header, which carries the revision
        return await self._rpc(lambda c: c.kvstub.Txn(request, timeout=self.timeout, metadata=c.metadata))

    # -- the contract -----------------------------------------------------------------------

    async def apply_batch(self, ops: Sequence[Op]) -> BatchResult:
        keys = batch_keys(ops)
        if len(keys) > self.max_txn_ops:
            raise InvalidConfig([
                f"a batch of {len(keys)} objects exceeds etcd's --max-txn-ops ({self.max_txn_ops}); "
                "split the apply or raise --max-txn-ops on etcd and max_txn_ops in the store URL"
            ])
        for _ in range(self.max_attempts):
            mods, current, read_revision = await self._read(keys)
            changes = plan_batch(ops, current)
            if not any(change.writes for change in changes):
                return stamp(changes, read_revision)[0]
            compares = [
                rpc.Compare(key=self._key(key), target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=mod)
                for key, mod in mods.items()
            ]
            writes = []
            for change in changes:
                if change.action is Action.DELETED:
                    writes.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=self._key(change.key))))
                elif change.writes and change.after is not None:
                    put = rpc.PutRequest(key=self._key(change.key), value=self._value(change.after))
                    writes.append(rpc.RequestOp(request_put=put))
            response = await self._txn(rpc.TxnRequest(compare=compares, success=writes))
            if response.succeeded:
                return stamp(changes, response.header.revision)[0]
        raise Conflict(
            f"{keys[0]}{' and others' if len(keys) > 1 else ''}: changed concurrently "
            f"{self.max_attempts} times while applying; retry"
        )

    async def _read(
        self, keys: Sequence[ResourceKey]
    ) -> tuple[dict[ResourceKey, int], dict[ResourceKey, Resource | None], int]:
        """Current mod_revision and object of every key, all at one revision."""
        ranges = [rpc.RequestOp(request_range=rpc.RangeRequest(key=self._key(key))) for key in keys]
        response = await self._txn(rpc.TxnRequest(success=ranges))
        mods: dict[ResourceKey, int] = {}
        current: dict[ResourceKey, Resource | None] = {}
        for key, op_response in zip(keys, response.responses):
            kvs = op_response.response_range.kvs
            mods[key] = kvs[0].mod_revision if kvs else 0
            current[key] = self._resource(kvs[0]) if kvs else None
        return mods, current, response.header.revision

    async def get(self, key: ResourceKey) -> Resource | None:
        found = await self._rpc(lambda c: c.get(self._key(key)))
        return self._resource(found) if found is not None else None

    async def list(self, kind: str | None = None, namespace: str | None = None) -> ListResult:
        found = await self._rpc(lambda c: c.get_prefix(self._range(kind, namespace)))
        items = [self._resource(kv) for kv in found]
        if namespace is not None:
            items = [item for item in items if item.namespace == namespace]
        return ListResult(tuple(sorted(items, key=lambda r: r.key)), found.header.revision)

    async def revision(self) -> int:
        # any single-key read carries the store revision in its header; this key never exists
        request = rpc.RangeRequest(key=self.prefix.encode() or b"/", keys_only=True)
        response = await self._rpc(lambda c: c.kvstub.Range(request, timeout=self.timeout, metadata=c.metadata))
        return response.header.revision

    def watch(self, since_revision: int, kinds: set[str] | None = None) -> AsyncGenerator[WatchEvent, None]:
        return self._watch(since_revision, frozenset(kinds) if kinds is not None else None)

    async def _watch(self, since: int, kinds: frozenset[str] | None) -> AsyncGenerator[WatchEvent, None]:
        client, address = self._client(), self.address
        start = self._range(next(iter(kinds)) if kinds and len(kinds) == 1 else None)
        stream = None
        try:
            await client.connect()
            stream = await client.watch_prefix(start, start_revision=since + 1, prev_kv=True)
            async for raw in stream:
                event = self._event(raw)
                if kinds is None or event.resource.kind in kinds:
                    yield event
            raise StoreUnavailable(f"etcd at {address}: the watch stream ended (store closed?)")
        except aetcd.RevisionCompactedError as exc:
            raise ResyncRequired(since, exc.compacted_revision) from exc
        except CONNECTION_ERRORS as exc:
            raise self._unavailable(address, exc) from exc
        except aetcd.ClientError as exc:
            raise StoreUnavailable(f"etcd at {address}: watch failed: {exc}") from exc
        finally:
            if stream is not None:
                with suppress(Exception):
                    await asyncio.wait_for(stream.cancel(), self.timeout)

    def _event(self, raw: aetcd.Event) -> WatchEvent:
        revision = raw.kv.mod_revision
        if raw.kind == aetcd.EventKind.DELETE:
            last = raw.prev_kv
            resource = self._resource(last, revision) if last is not None else self._key_only(raw.kv.key, revision)
            return WatchEvent(EventType.DELETED, resource, revision)
        kind = EventType.ADDED if raw.kv.version == 1 else EventType.MODIFIED
        return WatchEvent(kind, self._resource(raw.kv), revision)

    async def compact(self, revision: int) -> None:
        current = await self.revision()
        if revision > current:
            raise ValueError(f"cannot compact at revision {revision}: etcd is at {current}")
        # etcd's compact(r) keeps revision r; ours drops it, so compact one further when possible
        target = revision + 1 if revision < current else revision

        async def call(client: aetcd.Client) -> None:
            try:
                await client.compact(target)
            except aetcd.ClientError as exc:
                if "compacted" not in str(exc):  # already compacted at or past it: done
                    raise

        await self._rpc(call)

    async def close(self) -> None:
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with suppress(Exception):
                await asyncio.wait_for(client.close(), self.timeout)
