"""State-of-the-world ADS over real gRPC: the xDS conversation as Envoy holds it."""
from __future__ import annotations

import grpc
import pytest

from isthmus.pilot.push.request import PushRequest
from isthmus.pilot.xds import typeurls as T
from tests.pilot.xds.harness import make_node, names_of

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
RATINGS = "outbound|9080||ratings.default.svc.cluster.local"


async def test_cds_then_eds_then_ack(xds):
    c = xds.client()
    await c.request(T.CLUSTER)
    cds = await c.recv()
    assert cds.type_url == T.CLUSTER and cds.version_info == "v0" and cds.nonce
    assert sorted(names_of(cds)) == [RATINGS, REVIEWS]
    await c.ack(cds)
    # Envoy asks for the EDS of its EDS clusters; one name no cluster has gets an empty assignment.
    await c.request(T.ENDPOINT, [REVIEWS, "outbound|1||nothing.default.svc.cluster.local"])
    eds = await c.recv()
    assert eds.type_url == T.ENDPOINT and eds.nonce != cds.nonce
    assert sorted(names_of(eds)) == sorted([REVIEWS, "outbound|1||nothing.default.svc.cluster.local"])
    await c.ack(eds, [REVIEWS, "outbound|1||nothing.default.svc.cluster.local"])
    await c.expect_nothing()
    await xds.wait_for(lambda: all(t.state == "SYNCED" for e in xds.discovery.syncz() for t in e.types), what="synced")
    entry = xds.discovery.syncz()[0]
    cds_sync = entry.type_sync("cds")
    assert cds_sync.sent_version == "v0" and cds_sync.acked_version == "v0" and cds_sync.acked_nonce == cds.nonce
    assert entry.name == "reviews-v1.default" and entry.istio_version == "1.24.0"
    assert xds.metrics.value("pilot_xds_pushes_total", type="cds") == 1
    assert xds.metrics.value("pilot_xds") == 1


async def test_subscribed_names_are_answered_even_when_nothing_exists(xds):
    c = xds.client()
    await c.request(T.ROUTE, ["no-such-route"])
    rds = await c.recv()  # an empty response, not silence: Envoy must not stall on it
    assert rds.type_url == T.ROUTE and list(rds.resources) == [] and rds.nonce


async def test_named_type_with_no_names_is_not_answered_and_wildcard_star(xds):
    c = xds.client()
    await c.request(T.ROUTE, [])
    await c.expect_nothing(0.2)
    await c.request(T.LISTENER, ["*"])
    lds = await c.recv()
    assert names_of(lds) == ["0.0.0.0_9080"]


async def test_nack_keeps_last_good_is_recorded_and_not_resent(xds):
    c = xds.client()
    await c.request(T.CLUSTER)
    first = await c.recv()
    await c.ack(first)
    await xds.acked("cds", first.nonce)
    xds.mesh.world.clusters.append("outbound|80||bad.default.svc.cluster.local")
    await xds.discovery.push(PushRequest(full=True))
    second = await c.recv()
    assert second.version_info != first.version_info
    # Envoy rejects it: version_info stays at the last good version.
    await c.request(T.CLUSTER, [], version=first.version_info, nonce=second.nonce, error="cluster bad: invalid")
    await c.expect_nothing()
    await xds.wait_for(lambda: xds.metrics.value("pilot_total_xds_rejects_total", type="cds") == 1, what="reject metric")
    sync = xds.discovery.syncz()[0].type_sync("cds")
    assert sync.state == "STALE (NACK)"
    assert sync.acked_version == first.version_info
    assert sync.nack_error == "cluster bad: invalid" and sync.nack_version == second.version_info
    d = xds.discovery.syncz()[0].to_dict()
    assert d["types"]["cds"]["nack_error"] == "cluster bad: invalid"
    # The next change brings a new version; its ACK clears the NACK.
    xds.mesh.world.clusters.pop()
    await xds.discovery.push(PushRequest(full=True))
    third = await c.recv()
    assert third.version_info not in (first.version_info, second.version_info)
    await c.ack(third)
    await xds.wait_for(lambda: xds.discovery.syncz()[0].type_sync("cds").state == "SYNCED", what="synced")
    assert xds.discovery.syncz()[0].type_sync("cds").nack_error == ""


async def test_changed_resource_names_are_answered_at_once(xds):
    c = xds.client()
    await c.request(T.ENDPOINT, [REVIEWS])
    eds = await c.recv()
    assert names_of(eds) == [REVIEWS]
    await c.request(T.ENDPOINT, [REVIEWS, RATINGS], version=eds.version_info, nonce=eds.nonce)
    eds2 = await c.recv()
    assert sorted(names_of(eds2)) == sorted([REVIEWS, RATINGS])
    assert xds.discovery.syncz()[0].type_sync("eds").acked_nonce == eds.nonce


async def test_stale_nonce_is_ignored(xds):
    c = xds.client()
    await c.request(T.ENDPOINT, [REVIEWS])
    first = await c.recv()
    await xds.discovery.push(PushRequest(full=True))
    second = await c.recv()
    # A late request quoting the first nonce, even with new names, is ignored.
    await c.request(T.ENDPOINT, [RATINGS], version=first.version_info, nonce=first.nonce)
    await c.expect_nothing()
    sync = xds.discovery.syncz()[0].type_sync("eds")
    assert sync.acked_nonce == "" and sync.sent_nonce == second.nonce


async def test_reconnect_with_old_nonce_is_answered(xds):
    c = xds.client()
    await c.request(T.CLUSTER, [], version="v-old", nonce="nonce-from-another-pilot")
    cds = await c.recv()
    assert cds.type_url == T.CLUSTER


@pytest.mark.parametrize("node_id, fragment", [
    ("", "node.id is empty"),
    ("sidecar~10.0.0.1~x", "must be TYPE~IP~NAME.NAMESPACE"),
    ("waypoint~10.0.0.1~x.default~default.svc.cluster.local", "must be sidecar or router"),
    ("sidecar~not-an-ip~x.default~default.svc.cluster.local", "is not an IP address"),
])
async def test_malformed_node_is_refused_with_invalid_argument(xds, node_id, fragment):
    node = make_node()
    node.id = node_id
    c = xds.client(node)
    await c.request(T.CLUSTER)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.recv()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in err.value.details()


async def test_generator_failure_is_counted_not_fatal(xds):
    def boom(proxy, push):
        raise RuntimeError("translator bug")

    from isthmus.pilot.xds.generators import generator_table

    m = xds.mesh
    xds.discovery.generators = generator_table(boom, m.endpoints, m.listeners, m.routes)
    c = xds.client()
    await c.request(T.CLUSTER)
    await c.request(T.LISTENER)
    lds = await c.recv()
    assert lds.type_url == T.LISTENER
    assert xds.metrics.value("pilot_total_xds_internal_errors_total", type="cds") == 1


async def test_disconnect_updates_gauge_and_hooks():
    from tests.pilot.xds.harness import start_harness

    seen: list[tuple[str, str]] = []

    async def on_disconnect(proxy):
        seen.append(("down", proxy.id))

    h = await start_harness(on_proxy_connected=lambda p: seen.append(("up", p.id)),
                            on_proxy_disconnected=on_disconnect)
    try:
        c = h.client()
        await c.request(T.CLUSTER)
        await c.recv()
        assert h.metrics.value("pilot_xds") == 1
        await c.close()
        await h.wait_for(lambda: h.metrics.value("pilot_xds") == 0, what="disconnect")
        await h.wait_for(lambda: len(seen) == 2, what="hooks")
        node_id = make_node().id
        assert seen == [("up", node_id), ("down", node_id)]
    finally:
        await h.close()
