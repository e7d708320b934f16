"""The python engine's admin API over HTTP, with pilot in process and a fake DataPlane:
Envoy's page shapes, /ready going 503 → 200, /quitquitquit stopping the engine."""
from __future__ import annotations

import aiohttp
import pytest

from isthmus.proxy.admin import log_level, render_clusters_json, render_clusters_text, set_log_level
from isthmus.proxy.engines.python import PythonEngine
from isthmus.proxy.xds.client import Backoff
from tests.proxy.engines.fakes import FakeDataPlane, FakeManager, agent_options
from tests.proxy.xds.pilot import PRODUCTPAGE, PilotUnderTest, until

T = "type.googleapis.com/envoy.admin.v3."
REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"


@pytest.fixture
async def proxy(tmp_path):
    """(pilot — not started: its port is reserved —, engine, http session, admin base URL)."""
    pilot = PilotUnderTest()
    await pilot.start()
    await pilot.stop()  # keep the port; tests start pilot when they want config to flow
    engine = PythonEngine(agent_options(pilot.address, tmp_path), FakeManager(), dataplane=FakeDataPlane,
                          backoff=Backoff(0.05, 0.2))
    await engine.start()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
    yield pilot, engine, session, f"http://127.0.0.1:{engine.admin.port}"
    await session.close()
    await engine.stop()
    await pilot.stop()


async def get(session, url: str, method: str = "GET") -> tuple[int, str]:
    async with session.request(method, url) as r:
        return r.status, await r.text()


async def test_ready_goes_from_503_to_200_when_config_arrives(proxy):
    pilot, engine, http, base = proxy
    assert await get(http, f"{base}/ready") == (503, "PRE_INITIALIZING\n")
    assert not await engine.ready()
    await pilot.start()
    await until(lambda: engine.state() == "LIVE", what="LIVE")
    assert await get(http, f"{base}/ready") == (200, "LIVE\n")
    assert await engine.ready()
    async with http.get(f"{base}/server_info") as r:
        info = await r.json()
    assert info["state"] == "LIVE" and info["node"]["id"] == PRODUCTPAGE.node_id
    assert info["command_line_options"]["concurrency"] == 1


async def test_config_dump_clusters_listeners_stats(proxy):
    pilot, engine, http, base = proxy
    await pilot.start()
    await until(lambda: engine.state() == "LIVE", what="LIVE")
    async with http.get(f"{base}/config_dump") as r:
        dump = await r.json()
    by_type = {c["@type"]: c for c in dump["configs"]}
    assert list(by_type) == [T + "BootstrapConfigDump", T + "ClustersConfigDump", T + "EndpointsConfigDump",
                             T + "ListenersConfigDump", T + "RoutesConfigDump", T + "SecretsConfigDump"]
    assert by_type[T + "BootstrapConfigDump"]["bootstrap"]["node"]["id"] == PRODUCTPAGE.node_id
    listeners = {d["name"]: d for d in by_type[T + "ListenersConfigDump"]["dynamic_listeners"]}
    assert listeners["http_proxy"]["active_state"]["listener"]["name"] == "http_proxy"
    assert listeners["http_proxy"]["active_state"]["version_info"] == pilot.sync("lds").acked_version
    clusters = [c["cluster"]["name"] for c in by_type[T + "ClustersConfigDump"]["dynamic_active_clusters"]]
    assert REVIEWS in clusters
    routes = by_type[T + "RoutesConfigDump"]["dynamic_route_configs"]
    assert [r["route_config"]["name"] for r in routes] == ["http_proxy"]
    eps = by_type[T + "EndpointsConfigDump"]["dynamic_endpoint_configs"]
    assert REVIEWS in [e["endpoint_config"]["cluster_name"] for e in eps]
    secrets = {s["name"]: s["secret"] for s in by_type[T + "SecretsConfigDump"]["dynamic_active_secrets"]}
    assert secrets["default"]["tls_certificate"]["private_key"] == {"inline_string": "[redacted]"}
    assert "trusted_ca" in secrets["ROOTCA"]["validation_context"]

    status, text = await get(http, f"{base}/clusters")
    assert status == 200 and f"{REVIEWS}::127.0.0.11:19080::rq_total::1\n" in text
    assert f"{REVIEWS}::127.0.0.11:19080::health_flags::healthy\n" in text
    async with http.get(f"{base}/clusters?format=json") as r:
        statuses = {c["name"]: c for c in (await r.json())["cluster_statuses"]}
    host = statuses[REVIEWS]["host_statuses"][0]
    assert host["address"]["socket_address"]["port_value"] == 19080
    # Proto JSON as Envoy prints it: zero values (a COUNTER type, a 0 value) are omitted.
    assert {"name": "rq_total", "value": "1"} in host["stats"] and {"name": "cx_active", "type": "GAUGE"} in host["stats"]
    status, text = await get(http, f"{base}/listeners")
    assert "http_proxy::" in text

    status, text = await get(http, f"{base}/stats")
    assert "cluster_manager.cds.update_success: 1\n" in text and "control_plane.connected_state: 1\n" in text
    status, text = await get(http, f"{base}/stats?filter=^listener_manager")
    assert text.startswith("listener_manager.lds.") and "cluster_manager" not in text
    status, prom = await get(http, f"http://127.0.0.1:{engine.admin.stats_port}/stats/prometheus")
    assert status == 200 and "# TYPE cluster_manager_cds_update_success counter" in prom
    async with http.get(f"{base}/xds") as r:
        xds = await r.json()
    assert xds["connected"] and {t["type"]: t["version"] for t in xds["types"]}["cds"] == pilot.sync("cds").acked_version


async def test_logging_level(proxy):
    _, _, http, base = proxy
    before = log_level()
    try:
        status, text = await get(http, f"{base}/logging?level=debug", "POST")
        assert status == 200 and "isthmus: debug" in text
        assert "isthmus: debug" in (await get(http, f"{base}/logging"))[1]
        status, text = await get(http, f"{base}/logging?level=loud", "POST")
        assert status == 400 and "unknown log level 'loud'" in text
    finally:
        set_log_level(before)


async def test_quitquitquit_drains_and_stops(proxy):
    pilot, engine, http, base = proxy
    await pilot.start()
    await until(lambda: engine.state() == "LIVE", what="LIVE")
    assert (await get(http, f"{base}/quitquitquit"))[0] == 405  # POST only, as Envoy
    assert await get(http, f"{base}/quitquitquit", "POST") == (200, "OK\n")
    await until(lambda: engine.exited == 0, what="engine exited")
    plane = engine.core.dataplane
    assert plane.drained == 0.1 and plane.stopped and not engine.core.client.connected


async def test_drain_listeners(proxy):
    pilot, engine, http, base = proxy
    assert await get(http, f"{base}/drain_listeners?graceful&inboundonly", "POST") == (200, "OK\n")
    assert engine.core.dataplane.drained == 0.1
    assert await get(http, f"{base}/ready") == (503, "DRAINING\n")


def test_cluster_renderers_take_the_data_planes_plain_values():
    clusters = [{"name": "c", "added_via_api": True, "max_connections": 1024, "hosts": [
        {"address": "10.0.0.1:80", "health_flags": "/failed_outlier_check", "weight": 3, "zone": "z1",
         "stats": {"cx_active": 2, "rq_error": 1}, "rq_total": 7}]}]
    text = render_clusters_text(clusters)
    for line in ("c::added_via_api::true", "c::max_connections::1024", "c::10.0.0.1:80::cx_active::2",
                 "c::10.0.0.1:80::rq_total::7", "c::10.0.0.1:80::health_flags::/failed_outlier_check",
                 "c::10.0.0.1:80::weight::3", "c::10.0.0.1:80::zone::z1"):
        assert line + "\n" in text
    host = render_clusters_json(clusters)["cluster_statuses"][0]["host_statuses"][0]
    assert host["health_status"]["failed_outlier_check"] is True and host["weight"] == 3
    assert {"name": "cx_active", "value": "2", "type": "GAUGE"} in host["stats"]
