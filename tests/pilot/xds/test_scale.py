"""100 simulated proxies converge after one config change, in bounded time."""
from __future__ import annotations

import asyncio
import time

import grpc

from isthmus.pilot.push.request import PushRequest, Reason
from isthmus.pilot.xds import typeurls as T
from isthmus.shared.config.resource import ResourceKey
from tests.pilot.xds.harness import AdsClient, make_node, names_of

N = 100
NEW = "outbound|9080||details.default.svc.cluster.local"


async def run_proxy(c: AdsClient, converged: asyncio.Event, target: str):
    """A minimal Envoy: CDS wildcard, EDS for every cluster, ACK everything; done when it holds `target`."""
    clusters: list[str] = []
    last_eds = None
    try:
        await c.request(T.CLUSTER)
        while True:
            resp = await c.recv(timeout=20)
            names = names_of(resp)
            if resp.type_url == T.CLUSTER:
                await c.ack(resp)
                clusters = sorted(names)
                # Ask for the EDS of the (new) cluster list, quoting the last EDS response seen.
                await c.request(T.ENDPOINT, clusters, last_eds.version_info if last_eds else "",
                                last_eds.nonce if last_eds else "")
                if target in names:
                    converged.set()
            else:
                last_eds = resp
                await c.ack(resp, clusters)
    finally:
        await c.close()


async def test_hundred_proxies_converge(xds):
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{xds.port}") for _ in range(10)]
    events = [asyncio.Event() for _ in range(N)]
    clients = [AdsClient(channels[i % 10], make_node(f"app-{i}", f"ns-{i % 10}", ip=f"127.0.1.{i % 250 + 1}"))
               for i in range(N)]
    tasks = [asyncio.get_running_loop().create_task(run_proxy(clients[i], events[i], NEW)) for i in range(N)]
    try:
        await xds.wait_for(lambda: len(xds.discovery.syncz()) == N and all(
            t.state == "SYNCED" for e in xds.discovery.syncz() for t in e.types) and all(
            len(e.types) == 2 for e in xds.discovery.syncz()), timeout=20, what="100 proxies synced")
        started = time.monotonic()
        xds.mesh.world.clusters.append(NEW)
        xds.discovery.config_update(PushRequest(full=True, reasons=((Reason.CONFIG, 1),),
                                                configs_updated=frozenset({ResourceKey("ServiceEntry", "default", "details")})))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 15)
        elapsed = time.monotonic() - started
        assert elapsed < 10, elapsed
        version = xds.discovery.push_context.version
        await xds.wait_for(lambda: all(e.type_sync("cds").acked_version == version and e.type_sync("cds").state == "SYNCED"
                                       for e in xds.discovery.syncz()), timeout=10, what="all ACKed")
        assert xds.metrics.value("pilot_proxy_convergence_time_count") >= N
        assert xds.metrics.value("pilot_xds") == N
    finally:
        for c in clients:
            await c.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in channels:
            await ch.close()
