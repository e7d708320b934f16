"""Galley's gRPC API over a real server on loopback, with the in-memory store."""
from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from prometheus_client import CollectorRegistry

from isthmus.galley.service import ConfigService, GalleyMetrics
from isthmus.shared.protos import galley_pb2, galley_pb2_grpc
from isthmus.shared.service.grpcserver import new_server
from isthmus.shared.store import open_store

W = galley_pb2.WatchEvent


def vs(name: str, host: str, subset: str = "v1", ns: str = "default", weight: int | None = None) -> galley_pb2.Resource:
    dest: dict = {"destination": {"host": host, "subset": subset}}
    if weight is not None:
        dest["weight"] = weight
    return galley_pb2.Resource(
        api_version="networking.istio.io/v1", kind="VirtualService", namespace=ns, name=name,
        spec_json=json.dumps({"hosts": [host], "http": [{"route": [dest]}]}),
    )


@pytest.fixture
async def galley():
    store = open_store("memory://")
    registry = CollectorRegistry()
    server, _ = new_server()
    galley_pb2_grpc.add_ConfigServiceServicer_to_server(ConfigService(store, GalleyMetrics(registry)), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 16 << 20)])
    stub = galley_pb2_grpc.ConfigServiceStub(channel)
    yield stub, store, registry
    await channel.close()
    await server.stop(None)
    await store.close()


async def test_apply_creates_then_unchanged_then_configured(galley):
    stub, _, registry = galley
    r1 = await stub.Apply(galley_pb2.ApplyRequest(resources=[vs("reviews", "reviews"), vs("ratings", "ratings")]))
    assert [r.action for r in r1.results] == ["created", "created"]
    assert all(r.resource.resource_version for r in r1.results)
    assert r1.results[0].resource.creation_timestamp
    r2 = await stub.Apply(galley_pb2.ApplyRequest(resources=[vs("reviews", "reviews")]))
    assert [r.action for r in r2.results] == ["unchanged"]
    r3 = await stub.Apply(galley_pb2.ApplyRequest(resources=[vs("reviews", "reviews", subset="v2")]))
    assert [r.action for r in r3.results] == ["configured"]
    assert r3.revision > r1.revision
    assert registry.get_sample_value("galley_applies_total", {"result": "ok"}) == 3


async def test_invalid_apply_reports_every_error_and_stores_nothing(galley):
    stub, store, registry = galley
    bad_weight = vs("a", "reviews", weight=-5)
    bad_kind = galley_pb2.Resource(api_version="networking.istio.io/v1", kind="VirtualSrvice", namespace="default", name="b", spec_json="{}")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Apply(galley_pb2.ApplyRequest(resources=[vs("ok", "ok"), bad_weight, bad_kind]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = info.value.details()
    assert "nothing was stored" in detail
    assert "VirtualService default/a: spec.http[0].route[0].weight" in detail
    assert "unknown kind 'VirtualSrvice'" in detail
    listed = await stub.List(galley_pb2.ListRequest())
    assert list(listed.resources) == []
    assert registry.get_sample_value("galley_validation_rejections_total", {"kind": "VirtualService"}) == 1


async def test_get_list_delete_and_not_found(galley):
    stub, _, _ = galley
    await stub.Apply(galley_pb2.ApplyRequest(resources=[vs("reviews", "reviews"), vs("x", "x", ns="other")]))
    got = await stub.Get(galley_pb2.GetRequest(kind="vs", namespace="default", name="reviews"))
    assert json.loads(got.spec_json)["hosts"] == ["reviews"]
    assert len((await stub.List(galley_pb2.ListRequest(kind="VirtualService"))).resources) == 2
    assert [r.name for r in (await stub.List(galley_pb2.ListRequest(namespace="other"))).resources] == ["x"]
    gone = await stub.Delete(galley_pb2.DeleteRequest(kind="VirtualService", namespace="default", name="reviews"))
    assert gone.resource.name == "reviews"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Get(galley_pb2.GetRequest(kind="VirtualService", namespace="default", name="reviews"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Delete(galley_pb2.DeleteRequest(kind="VirtualService", namespace="default", name="reviews"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_stale_resource_version_is_a_conflict(galley):
    stub, _, _ = galley
    first = (await stub.Apply(galley_pb2.ApplyRequest(resources=[vs("reviews", "reviews")]))).results[0].resource
    await stub.Apply(galley_pb2.ApplyRequest(resources=[vs("reviews", "reviews", subset="v2")]))
    stale = vs("reviews", "reviews", subset="v3")
    stale.resource_version = first.resource_version
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Apply(galley_pb2.ApplyRequest(resources=[stale]))
    assert info.value.code() == grpc.StatusCode.ABORTED


async def test_oversized_request_is_rejected(galley):
    stub, _, _ = galley
    big = vs("big", "big")
    big.annotations["blob"] = "x" * (5 * 1024 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Apply(galley_pb2.ApplyRequest(resources=[big]))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in info.value.details()


async def _collect(call, until, timeout=5.0):
    out = []

    async def run():
        async for ev in call:
            out.append(ev)
            if until(out):
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def test_watch_snapshot_then_changes_and_resume(galley):
    stub, _, _ = galley
    await stub.Apply(galley_pb2.ApplyRequest(resources=[vs("a", "a"), vs("b", "b")]))
    call = stub.Watch(galley_pb2.WatchRequest())
    snapshot = await _collect(call, lambda evs: evs[-1].type == W.SYNCED)
    assert [e.type for e in snapshot] == [W.ADDED, W.ADDED, W.SYNCED]
    synced_at = snapshot[-1].revision
    await stub.Apply(galley_pb2.ApplyRequest(resources=[vs("c", "c")]))
    await stub.Delete(galley_pb2.DeleteRequest(kind="VirtualService", namespace="default", name="a"))
    live = await _collect(call, lambda evs: len(evs) == 2)
    assert [(e.type, e.resource.name) for e in live] == [(W.ADDED, "c"), (W.DELETED, "a")]
    call.cancel()
    # A watcher that reconnects with its last revision misses nothing.
    await stub.Apply(galley_pb2.ApplyRequest(resources=[vs("d", "d")]))
    resumed = stub.Watch(galley_pb2.WatchRequest(since_revision=synced_at))
    events = await _collect(resumed, lambda evs: len(evs) == 3)
    assert [(e.type, e.resource.name) for e in events] == [(W.ADDED, "c"), (W.DELETED, "a"), (W.ADDED, "d")]
    resumed.cancel()


async def test_watch_from_compacted_revision_resyncs(galley):
    stub, store, _ = galley
    for i in range(5):
        await stub.Apply(galley_pb2.ApplyRequest(resources=[vs(f"s{i}", f"s{i}")]))
    await store.compact(await store.revision() - 1)
    call = stub.Watch(galley_pb2.WatchRequest(since_revision=1))
    events = await _collect(call, lambda evs: evs[-1].type == W.SYNCED)
    assert events[0].type == W.RESYNC
    assert sorted(e.resource.name for e in events if e.type == W.ADDED) == [f"s{i}" for i in range(5)]
    call.cancel()


async def test_slow_watcher_does_not_block_others(galley):
    stub, _, _ = galley
    slow = stub.Watch(galley_pb2.WatchRequest())  # never read
    fast = stub.Watch(galley_pb2.WatchRequest())
    await _collect(fast, lambda evs: evs[-1].type == W.SYNCED)
    names = [f"n{i}" for i in range(60)]
    for n in names:
        await stub.Apply(galley_pb2.ApplyRequest(resources=[vs(n, n)]))
    got = await _collect(fast, lambda evs: len(evs) == len(names), timeout=10)
    assert [e.resource.name for e in got] == names
    slow.cancel()
    fast.cancel()
