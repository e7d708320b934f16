"""Pushes end to end: order, EDS-only pushes, per-proxy relevance, debounce, failures."""
from __future__ import annotations

import asyncio

from isthmus.pilot.push.request import PushRequest, Reason
from isthmus.pilot.xds import typeurls as T
from isthmus.shared.config.resource import ResourceKey
from isthmus.pilot.xds.connection import PushEvent
from isthmus.pilot.xds.server import deliver
from tests.pilot.xds.harness import make_node, names_of, start_harness

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
RATINGS = "outbound|9080||ratings.default.svc.cluster.local"


async def subscribe_all(c):
    """Subscribe as Envoy does: CDS, EDS, LDS, RDS, each ACKed."""
    await c.request(T.CLUSTER)
    cds = await c.recv()
    await c.ack(cds)
    await c.request(T.ENDPOINT, [REVIEWS, RATINGS])
    eds = await c.recv()
    await c.ack(eds, [REVIEWS, RATINGS])
    await c.request(T.LISTENER)
    lds = await c.recv()
    await c.ack(lds)
    await c.request(T.ROUTE, ["9080"])
    rds = await c.recv()
    await c.ack(rds, ["9080"])
    return {T.CLUSTER: [], T.ENDPOINT: [REVIEWS, RATINGS], T.LISTENER: [], T.ROUTE: ["9080"]}


async def drain_push(c, subs, count):
    out = []
    for _ in range(count):
        r = await c.recv()
        out.append(r)
        await c.ack(r, subs[r.type_url])
    return out


async def test_full_push_order_is_cds_eds_lds_rds(xds):
    c = xds.client()
    subs = await subscribe_all(c)
    await xds.discovery.push(PushRequest(full=True))
    pushed = await drain_push(c, subs, 4)
    assert [r.type_url for r in pushed] == [T.CLUSTER, T.ENDPOINT, T.LISTENER, T.ROUTE]
    assert len({r.version_info for r in pushed}) == 1 and len({r.nonce for r in pushed}) == 4
    await c.expect_nothing()


async def test_eds_only_push_sends_only_affected_clusters(xds):
    c = xds.client()
    subs = await subscribe_all(c)
    xds.mesh.world.endpoints[REVIEWS] = ["127.0.0.11", "127.0.0.12"]
    await xds.discovery.push(PushRequest(full=False, eds_hosts=frozenset({"reviews.default.svc.cluster.local"}),
                                         reasons=((Reason.ENDPOINT, 1),)))
    (eds,) = await drain_push(c, subs, 1)
    assert eds.type_url == T.ENDPOINT and names_of(eds) == [REVIEWS]
    await c.expect_nothing()
    # A service nobody watches: no push at all.
    await xds.discovery.push(PushRequest(full=False, eds_hosts=frozenset({"other.default.svc.cluster.local"})))
    await c.expect_nothing()


async def test_sidecar_change_pushes_only_that_namespace(xds):
    a = xds.client(make_node("reviews-v1", "team-a"))
    b = xds.client(make_node("ratings-v1", "team-b"))
    subs_a = await subscribe_all(a)
    await subscribe_all(b)
    xds.mesh.calls.clear()
    await xds.discovery.push(PushRequest(full=True, configs_updated=frozenset({ResourceKey("Sidecar", "team-a", "default")})))
    await drain_push(a, subs_a, 4)
    await b.expect_nothing()
    assert {proxy for _, proxy, _ in xds.mesh.calls} == {a.node.id}
    # A Sidecar in the root namespace concerns everyone.
    await xds.discovery.push(PushRequest(full=True, configs_updated=frozenset({ResourceKey("Sidecar", "istio-system", "default")})))
    assert (await b.recv()).type_url == T.CLUSTER


async def test_debounce_merges_a_burst_into_one_push(xds):
    c = xds.client()
    subs = await subscribe_all(c)
    for i in range(5):
        xds.discovery.config_update(PushRequest(full=True, reasons=((Reason.CONFIG, 1),),
                                                configs_updated=frozenset({ResourceKey("VirtualService", "default", f"vs{i}")})))
    pushed = await drain_push(c, subs, 4)
    await c.expect_nothing(0.3)
    assert [r.type_url for r in pushed] == [T.CLUSTER, T.ENDPOINT, T.LISTENER, T.ROUTE]
    assert xds.discovery.debouncer.pushes == 1
    last = xds.discovery.last_push.request
    assert len(last.configs_updated) == 5 and last.reason_counts[Reason.CONFIG] == 5
    assert xds.metrics.value("pilot_push_triggers_total", type="config") == 5
    await xds.wait_for(lambda: xds.metrics.value("pilot_proxy_convergence_time_count") == 1, what="convergence")


async def test_push_context_failure_keeps_previous(xds):
    c = xds.client()
    await c.request(T.CLUSTER)
    await c.recv()
    xds.mesh.fail_build = True
    await xds.discovery.push(PushRequest(full=True))
    assert xds.metrics.value("pilot_xds_push_context_errors_total") == 1
    assert xds.discovery.push_context.version == "v0"
    await c.expect_nothing()


async def test_queued_pushes_to_one_connection_are_merged():
    """Requests for a connection still waiting in the queue merge into one push."""
    h = await start_harness(push_concurrency=0)  # no workers: this test plays the worker
    try:
        c = h.client()
        await c.request(T.ENDPOINT, [REVIEWS, RATINGS])
        await c.recv()
        for host in ("reviews", "ratings"):
            await h.discovery.push(PushRequest(full=False, eds_hosts=frozenset({f"{host}.default.svc.cluster.local"})))
        con = h.discovery.connections()[0]
        assert len(h.discovery.queue) == 1
        assert h.discovery.queue.pending(con).eds_hosts == {"reviews.default.svc.cluster.local",
                                                            "ratings.default.svc.cluster.local"}
        key, req = await h.discovery.queue.dequeue()
        assert deliver(key, PushEvent(req, h.discovery.push_context, asyncio.get_running_loop().create_future()))
        eds = await c.recv()
        assert sorted(names_of(eds)) == sorted([REVIEWS, RATINGS])
        await c.expect_nothing()
    finally:
        await h.close()


async def test_push_reaches_late_subscriber_with_current_version(xds):
    await xds.discovery.push(PushRequest(full=True))
    await asyncio.sleep(0)
    c = xds.client()
    await c.request(T.CLUSTER)
    cds = await c.recv()
    assert cds.version_info == xds.discovery.push_context.version != "v0"
