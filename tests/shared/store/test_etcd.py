"""etcd store specifics: key layout, real concurrency, restarts, unreachable endpoints."""
from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import aclosing
from typing import Awaitable, Callable, TypeVar

import aetcd
import pytest

from isthmus.shared.errors import Conflict, InvalidConfig, StoreUnavailable
from isthmus.shared.store import Op, open_store
from isthmus.shared.store.etcd import EtcdStore

from .conftest import EtcdServer, etcd_store, free_port
from .helpers import summary, take, vs, with_spec

T = TypeVar("T")


async def eventually(call: Callable[[], Awaitable[T]], within: float = 15.0) -> T:
    """Retry `call` while the store is unavailable (gRPC reconnect backoff), bounded."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await call()
        except StoreUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.etcd
async def test_objects_live_under_prefix_kind_namespace_name(etcd_server: EtcdServer) -> None:
    prefix = f"/layout-{uuid.uuid4().hex[:8]}"
    store = open_store(f"etcd://{etcd_server.endpoint}?prefix={prefix}")
    created = await store.create(vs("reviews", "prod"))
    host, port = etcd_server.endpoint.split(":")
    async with aetcd.Client(host, int(port), timeout=5) as raw:
        stored = await raw.get(f"{prefix}/VirtualService/prod/reviews".encode())
        doc = json.loads(stored.value)
        assert "resourceVersion" not in doc["metadata"]
        assert doc["metadata"]["uid"] == created.meta.uid and doc["spec"] == dict(created.spec)
        assert str(stored.mod_revision) == created.meta.resource_version
        foreign = await raw.put(b"/elsewhere/key", b"x")  # another writer advances etcd's revision
    assert await store.revision() == foreign.header.revision > created.revision
    async with aclosing(store.watch(created.revision - 1)) as events:
        later = await store.create(vs("ratings", "prod"))
        assert summary(await take(events, 2)) == [
            ("ADDED", "reviews", created.revision), ("ADDED", "ratings", later.revision)]
    await store.close()


@pytest.mark.etcd
async def test_concurrent_writers_on_two_clients_never_lose_an_update(etcd_server: EtcdServer) -> None:
    prefix = f"/race-{uuid.uuid4().hex[:8]}"
    one, two = etcd_store(etcd_server, prefix), etcd_store(etcd_server, prefix)
    base = await one.create(vs("counter").with_meta(annotations={"n": "0"}))

    stale = await asyncio.gather(
        *(s.update(with_spec(base, hosts=[f"h{i}"])) for i, s in enumerate([one, two] * 5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in stale) == 1
    assert all(isinstance(r, Conflict) for r in stale if isinstance(r, Exception))

    async def increment(store: EtcdStore, times: int) -> None:
        for _ in range(times):
            while True:
                current = await store.get(base.key)
                n = int(current.meta.annotations["n"])
                try:
                    await store.apply_batch([Op.upsert(current.with_meta(annotations={"n": str(n + 1)}))])
                    break
                except Conflict:
                    await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(increment(one, 15), increment(two, 15)), 30)
    assert (await two.get(base.key)).meta.annotations["n"] == "30"
    await one.close()
    await two.close()


@pytest.mark.etcd
async def test_restart_keeps_objects_and_a_resumed_watch_misses_nothing(private_etcd: EtcdServer) -> None:
    store = etcd_store(private_etcd)
    a = await store.create(vs("a"))
    b = await store.create(vs("b"))
    events = store.watch(a.revision - 1)
    seen = await take(events, 2)
    pending = asyncio.ensure_future(take(events, 1))  # parked on the live stream
    await asyncio.sleep(0.1)

    private_etcd.stop()
    with pytest.raises(StoreUnavailable, match=private_etcd.endpoint):
        await asyncio.wait_for(pending, 10)
    with pytest.raises(StoreUnavailable, match=private_etcd.endpoint):
        await store.get(a.key)

    private_etcd.start()
    c = await eventually(lambda: store.create(vs("c")))
    b2 = await store.update(with_spec(b, hosts=["moved"]))
    assert [r.name for r in (await store.list()).items] == ["a", "b", "c"]
    assert await store.get(a.key) == a
    async with aclosing(store.watch(seen[-1].revision)) as resumed:
        assert summary(await take(resumed, 2)) == [("ADDED", "c", c.revision), ("MODIFIED", "b", b2.revision)]
    await store.close()


@pytest.mark.etcd
async def test_a_dead_endpoint_fails_over_to_the_next(etcd_server: EtcdServer) -> None:
    dead = f"127.0.0.1:{free_port()}"
    store = open_store(f"etcd://{dead},{etcd_server.endpoint}?prefix=/failover-{uuid.uuid4().hex[:8]}")
    with pytest.raises(StoreUnavailable, match=dead):
        await store.revision()
    assert await store.revision() > 0
    await store.close()


async def test_unreachable_etcd_is_store_unavailable_naming_the_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    store = open_store(f"etcd://{address}")
    with pytest.raises(StoreUnavailable, match=f"etcd at {address} is unavailable"):
        await store.get(vs("a").key)
    with pytest.raises(StoreUnavailable, match=address):
        await take(store.watch(0), 1)
    await store.close()


async def test_batches_beyond_max_txn_ops_are_refused_before_any_request() -> None:
    store = EtcdStore([("127.0.0.1", free_port())], max_txn_ops=3)
    with pytest.raises(InvalidConfig, match="--max-txn-ops"):
        await store.apply_batch([Op.upsert(vs(f"o{i}")) for i in range(4)])
    await store.close()
