"""The `python` engine against pilot in process, with a fake DataPlane: readiness, bind
errors, certificate rotation, and --concurrency N worker processes."""
from __future__ import annotations

import asyncio
import dataclasses
import socket

import aiohttp
import pytest

from isthmus.proxy.admin import merge_clusters
from isthmus.proxy.engines.python import DATAPLANE, PythonEngine
from isthmus.proxy.xds.client import Backoff
from tests.proxy.engines.fakes import FakeDataPlane, FakeManager, agent_options
from tests.proxy.xds.pilot import PRODUCTPAGE, PilotUnderTest, until

FAKE = "tests.proxy.engines.fakes:FakeDataPlane"


@pytest.fixture
async def pilot():
    p = PilotUnderTest()
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def make_engine(tmp_path):
    engines = []

    async def factory(pilot: PilotUnderTest, manager=None, **kw) -> PythonEngine:
        dataplane = kw.pop("dataplane", FakeDataPlane)
        engine = PythonEngine(agent_options(pilot.address, tmp_path, **kw), manager or FakeManager(),
                              dataplane=dataplane, backoff=Backoff(0.05, 0.2))
        engines.append(engine)
        await engine.start()
        return engine

    yield factory
    for e in engines:
        await e.stop()
    FakeDataPlane.bind_errors = []


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_ready_after_a_complete_snapshot_is_applied(pilot, make_engine, delta):
    engine = await make_engine(pilot, delta=delta)
    await until(lambda: engine.state() == "LIVE", what="engine LIVE")
    assert await engine.ready()
    plane = engine.core.dataplane
    snap = plane.applied[-1]
    assert "http_proxy" in snap.listeners and snap.missing().routes == {}
    assert plane.node.node_id == engine.node.id and plane.node.canonical_service == "productpage"
    assert plane.worker_id == 0 and plane.reuse_port is False
    # The data plane reads the workload certificate through AgentSecrets.
    assert plane.secrets.get("default").tls_certificate.key.inline == engine.manager.current().key_pem
    assert plane.secrets.get("ROOTCA").validation_context.trusted_ca.inline == engine.manager.current().roots_pem
    await engine.drain(0.5)
    assert plane.drained == 0.5 and not await engine.ready() and engine.state() == "DRAINING"


async def test_bind_errors_keep_it_unready_and_nack(pilot, make_engine):
    FakeDataPlane.bind_errors = ["listener 'http_proxy' on 127.0.0.1:15001: address already in use"]
    engine = await make_engine(pilot)
    await until(lambda: pilot.sync("lds") is not None and pilot.sync("lds").state == "STALE (NACK)", what="LDS NACK")
    assert not await engine.ready() and engine.core.dataplane.applied
    FakeDataPlane.bind_errors = []
    await pilot.push()
    await until(lambda: engine.state() == "LIVE", what="LIVE once bound")


async def test_certificate_rotation_bumps_the_secret_version(pilot, make_engine):
    manager = FakeManager()
    engine = await make_engine(pilot, manager)
    secrets = engine.core.secrets
    before = secrets.version
    manager.rotate()
    assert secrets.version == before + 1
    assert secrets.get("default").tls_certificate.chain.inline == manager.current().cert_chain_pem
    assert secrets.get("file-root:/etc/ca.pem").validation_context.trusted_ca.filename == "/etc/ca.pem"
    cert = secrets.get("file-cert:/c.pem~/k.pem").tls_certificate
    assert (cert.chain.filename, cert.key.filename) == ("/c.pem", "/k.pem")
    assert secrets.get("kubernetes://nope") is None and not secrets.has_local("file-root:/does/not/exist")


async def test_concurrency_runs_worker_processes(pilot, make_engine):
    engine = await make_engine(pilot, concurrency=2, dataplane=FAKE)
    await until(lambda: engine.state() == "LIVE", timeout=30, what="both workers LIVE")
    assert len(pilot.discovery.syncz()) == 2  # one ADS stream per worker, same node
    assert {e.proxy_id for e in pilot.discovery.syncz()} == {engine.node.id}
    base = f"http://127.0.0.1:{engine.admin.port}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with http.get(f"{base}/stats") as r:
            stats = await r.text()
        async with http.get(f"{base}/config_dump") as r:
            dump = await r.json()
        async with http.get(f"{base}/clusters") as r:
            clusters = await r.text()
    assert "cluster.upstream_rq_total.any: 2\n" in stats  # one apply per worker, summed
    assert "control_plane.connected_state: 2\n" in stats
    assert "http_proxy" in str(dump) and "::rq_total::2\n" in clusters
    # A worker dying is the engine exiting.
    engine.workers[1].proc.kill()
    await until(lambda: engine.exited is not None, what="engine notices the dead worker")
    assert not await engine.ready()


def test_merge_clusters_sums_host_stats():
    w0 = [{"name": "c", "hosts": [{"address": "a:1", "stats": {"rq_total": 2}}]}]
    w1 = [{"name": "c", "hosts": [{"address": "a:1", "stats": {"rq_total": 3, "cx_active": 1}}]}]
    assert merge_clusters([w0, w1]) == [{"name": "c", "hosts": [{"address": "a:1", "stats": {"rq_total": 5, "cx_active": 1}}]}]
    # The runtime's shape: counters beside the host fields, which are not summed.
    w0 = [{"name": "c", "hosts": [{"address": "a:1", "rq_total": 2, "weight": 1, "outlier_ejected": False}]}]
    w1 = [{"name": "c", "hosts": [{"address": "a:1", "rq_total": 1, "weight": 1, "outlier_ejected": True}]}]
    assert merge_clusters([w0, w1])[0]["hosts"] == [{"address": "a:1", "rq_total": 3, "weight": 1, "outlier_ejected": False}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_with_the_real_data_plane(pilot, make_engine, tmp_path):
    pytest.importorskip("isthmus.proxy.runtime.dataplane")
    outbound, inbound = free_port(), free_port()
    workload = dataclasses.replace(PRODUCTPAGE, outbound_port=outbound, ports=(
        {"port": 9080, "name": "http", "protocol": "HTTP", "proxyPort": inbound},))
    engine = await make_engine(pilot, workload=workload, dataplane=DATAPLANE)
    await until(lambda: engine.state() == "LIVE", what="LIVE with real sockets")
    listeners = {item["name"]: item for item in await engine.listeners()}
    assert listeners["http_proxy"]["bound"] and listeners["http_proxy"]["address"] == f"127.0.0.1:{outbound}"
    assert listeners[f"127.0.0.1_{inbound}"]["bound"]
    reader, writer = await asyncio.open_connection("127.0.0.1", outbound)  # accepting
    writer.close()
    base = f"http://127.0.0.1:{engine.admin.port}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with http.get(f"{base}/clusters") as r:
            text = await r.text()
    assert "outbound|9080||reviews.default.svc.cluster.local::127.0.0.11:19080::rq_total::0\n" in text
    assert "outbound|9080||reviews.default.svc.cluster.local::default_priority::max_connections::" in text


async def test_workers_share_listener_ports_with_the_real_data_plane(pilot, make_engine):
    pytest.importorskip("isthmus.proxy.runtime.dataplane")
    outbound = free_port()
    workload = dataclasses.replace(PRODUCTPAGE, outbound_port=outbound, ports=(
        {"port": 9080, "name": "http", "protocol": "HTTP", "proxyPort": free_port()},))
    engine = await make_engine(pilot, workload=workload, concurrency=2, dataplane=DATAPLANE)
    await until(lambda: engine.state() == "LIVE", timeout=30, what="two workers bound with SO_REUSEPORT")
    assert all(w.ready for w in engine.workers)
    assert {item["name"]: item["bound"] for item in await engine.listeners()}["http_proxy"]
