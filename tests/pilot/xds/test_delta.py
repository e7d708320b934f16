"""Incremental (delta) ADS over real gRPC: subscribe, unsubscribe, removals, ACK/NACK."""
from __future__ import annotations

from isthmus.pilot.push.request import PushRequest, Reason
from isthmus.pilot.xds import typeurls as T
from tests.pilot.xds.harness import names_of

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
RATINGS = "outbound|9080||ratings.default.svc.cluster.local"


async def test_wildcard_cds_then_removed_cluster_is_reported(xds):
    c = xds.client(delta=True)
    await c.delta_request(T.CLUSTER)  # no names on a wildcard type: everything
    first = await c.recv()
    assert sorted(names_of(first)) == [RATINGS, REVIEWS] and first.system_version_info == "v0"
    assert all(r.version for r in first.resources)
    await c.delta_request(T.CLUSTER, nonce=first.nonce)  # ACK
    await xds.acked("cds", first.nonce)
    xds.mesh.world.clusters.remove(RATINGS)
    await xds.discovery.push(PushRequest(full=True))
    second = await c.recv()
    assert list(second.removed_resources) == [RATINGS]
    assert names_of(second) == []  # reviews did not change: not resent
    await c.delta_request(T.CLUSTER, nonce=second.nonce)
    await xds.wait_for(lambda: xds.discovery.syncz()[0].type_sync("cds").state == "SYNCED", what="ack")
    assert xds.discovery.syncz()[0].delta is True


async def test_push_with_no_change_sends_nothing(xds):
    c = xds.client(delta=True)
    await c.delta_request(T.CLUSTER)
    first = await c.recv()
    await c.delta_request(T.CLUSTER, nonce=first.nonce)
    await xds.acked("cds", first.nonce)
    await xds.discovery.push(PushRequest(full=True))
    await c.expect_nothing()


async def test_subscribe_unsubscribe_and_resubscribe(xds):
    c = xds.client(delta=True)
    await c.delta_request(T.ENDPOINT, subscribe=[REVIEWS])
    first = await c.recv()
    assert names_of(first) == [REVIEWS]
    await c.delta_request(T.ENDPOINT, subscribe=[RATINGS], nonce=first.nonce)
    second = await c.recv()
    assert names_of(second) == [RATINGS]  # only the new name
    await c.delta_request(T.ENDPOINT, unsubscribe=[REVIEWS], nonce=second.nonce)
    await c.expect_nothing()
    # Endpoints of the unsubscribed cluster change: nothing for it.
    xds.mesh.world.endpoints[REVIEWS] = ["127.0.0.99"]
    await xds.discovery.push(PushRequest(full=False, eds_hosts=frozenset({"reviews.default.svc.cluster.local"})))
    await c.expect_nothing()
    # Re-subscribing sends it again, though the client once held a version of it.
    await c.delta_request(T.ENDPOINT, subscribe=[REVIEWS])
    third = await c.recv()
    assert names_of(third) == [REVIEWS]


async def test_initial_resource_versions_skip_unchanged(xds):
    probe = xds.client(delta=True)
    await probe.delta_request(T.CLUSTER)
    known = {r.name: r.version for r in (await probe.recv()).resources}
    await probe.close()
    # A reconnecting client already holding these versions gets an empty (but present) answer.
    c = xds.client(delta=True)
    await c.delta_request(T.CLUSTER, initial={**known, "outbound|1||gone.default.svc.cluster.local": "x"})
    resp = await c.recv()
    assert names_of(resp) == []
    assert list(resp.removed_resources) == ["outbound|1||gone.default.svc.cluster.local"]


async def test_delta_nack_is_recorded_and_counted(xds):
    c = xds.client(delta=True)
    await c.delta_request(T.LISTENER)
    first = await c.recv()
    await c.delta_request(T.LISTENER, nonce=first.nonce)
    await xds.acked("lds", first.nonce)
    xds.mesh.world.listeners.append("broken")
    await xds.discovery.push(PushRequest(full=True, reasons=((Reason.CONFIG, 1),)))
    second = await c.recv()
    assert names_of(second) == ["broken"]
    await c.delta_request(T.LISTENER, nonce=second.nonce, error="listener broken: bad filter")
    await c.expect_nothing()
    await xds.wait_for(lambda: xds.metrics.value("pilot_total_xds_rejects_total", type="lds") == 1, what="reject")
    sync = xds.discovery.syncz()[0].type_sync("lds")
    assert sync.state == "STALE (NACK)" and sync.acked_version == "v0" and "bad filter" in sync.nack_error


async def test_named_subscription_on_rds(xds):
    c = xds.client(delta=True)
    await c.delta_request(T.ROUTE, subscribe=["9080"])
    assert names_of(await c.recv()) == ["9080"]
