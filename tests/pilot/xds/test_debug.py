"""/debug/* pages over HTTP, mounted as the monitoring server mounts them."""
from __future__ import annotations

import aiohttp
import pytest

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.push_context import ConfigSnapshot, PushContext
from isthmus.pilot.xds import typeurls as T
from isthmus.pilot.xds.debug import debug_routes
from isthmus.pilot.xds.status import SyncEntry, proxy_status
from isthmus.shared.service.http import App, serve
from tests.pilot.fixtures import BOOKINFO_SERVICES, resources_from_yaml
from tests.pilot.xds.harness import FakeMesh, start_harness

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"


class BookinfoMesh(FakeMesh):
    """Fake generators, but a real config snapshot and registry behind the PushContext."""

    def build(self, previous, request, version):
        self.snapshots[version] = self.world
        resources = resources_from_yaml(BOOKINFO_SERVICES)
        return PushContext.build(version, ConfigSnapshot.build(len(resources), resources), MeshConfig())


@pytest.fixture
async def pages():
    h = await start_harness(BookinfoMesh())
    app = App()
    for path, handler in debug_routes(h.discovery).items():
        app.add_get(path, handler)
    server = await serve(app, "127.0.0.1", 0)
    client = aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}")
    try:
        yield h, client
    finally:
        await client.close()
        await server.close()
        await h.close()


async def test_syncz_and_proxy_status(pages):
    h, http = pages
    c = h.client()
    await c.request(T.CLUSTER)
    cds = await c.recv()
    await c.ack(cds)
    await h.wait_for(lambda: h.discovery.syncz()[0].type_sync("cds").state == "SYNCED", what="ack")
    body = await (await http.get("/debug/syncz")).json()
    assert body[0]["name"] == "reviews-v1.default" and body[0]["types"]["cds"]["state"] == "SYNCED"
    rows = proxy_status([SyncEntry.from_dict(e) for e in body])  # what `isthmus proxy-status` does
    assert (rows[0].cds, rows[0].lds) == ("SYNCED", "NOT SENT")
    page = await (await http.get("/debug/proxy_status")).json()
    assert page[0]["cds"] == "SYNCED"


async def test_config_dump(pages):
    h, http = pages
    c = h.client()
    await c.request(T.ENDPOINT, [REVIEWS])
    await c.recv()
    resp = await http.get("/debug/config_dump", params={"proxyID": "reviews-v1.default"})
    assert resp.status == 200
    dump = await resp.json()
    assert [r["name"] for r in dump["resources"]["cds"]][0].startswith("outbound|9080")
    assert [r["clusterName"] for r in dump["resources"]["eds"]] == [REVIEWS]
    assert [r["name"] for r in dump["resources"]["lds"]] == ["0.0.0.0_9080"]
    assert "rds" not in dump["resources"]  # not subscribed
    assert (await http.get("/debug/config_dump")).status == 400
    missing = await http.get("/debug/config_dump", params={"proxyID": "nope"})
    assert missing.status == 404 and "nope" in (await missing.json())["error"]


async def test_registryz_configz_push_status(pages):
    h, http = pages
    reg = await (await http.get("/debug/registryz")).json()
    reviews = next(s for s in reg if s["service"]["hostname"] == "reviews.default.svc.cluster.local")
    assert sorted(e["address"] for e in reviews["endpoints"]) == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    assert reviews["service"]["ports"][0]["protocol"] == "HTTP"
    cfg = await (await http.get("/debug/configz")).json()
    assert {r["kind"] for r in cfg["resources"]} == {"ServiceEntry", "WorkloadEntry"}
    from isthmus.pilot.push.request import PushRequest

    await h.discovery.push(PushRequest(full=True))
    status = await (await http.get("/debug/push_status")).json()
    assert status["version"] == h.discovery.push_context.version and status["last_push"]["full"] is True
    assert status["debounce"]["quiet_s"] == 0.01 and status["connected"] == 0
