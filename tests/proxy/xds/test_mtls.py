"""ADS over mTLS with certificates from an in-process citadel: the proxy presents its
workload certificate and checks pilot by the hostname only istiod may carry."""
from __future__ import annotations

import time

import pytest

from isthmus.citadel.certmanager import CertificateManager, RenewalPolicy
from isthmus.citadel.client import CitadelClient
from isthmus.citadel.pki.policy import CONTROL_PLANE_DNS_NAMES
from isthmus.citadel.spiffe import SpiffeId
from isthmus.proxy.engines.python import PythonEngine
from isthmus.proxy.xds.client import Backoff, XdsClient, XdsTls
from isthmus.proxy.xds.node import build_node
from tests.citadel.conftest import make_citadel  # noqa: F401 - fixture
from tests.proxy.engines.fakes import FakeDataPlane, agent_options
from tests.proxy.xds.pilot import PRODUCTPAGE, PilotUnderTest, until

ISTIOD = SpiffeId("cluster.local", "istio-system", "istiod")
WORKLOAD = SpiffeId("cluster.local", PRODUCTPAGE.namespace, PRODUCTPAGE.service_account)


def material(manager: CertificateManager):
    cert = manager.current()
    return None if cert is None else (cert.cert_chain_pem, cert.key_pem, cert.roots_pem)


@pytest.fixture
async def mesh(make_citadel):  # noqa: F811
    citadel = await make_citadel()
    started: list = []

    async def manager(identity: SpiffeId, dns_names=()) -> CertificateManager:
        token = citadel.token_key.mint(identity, 3600, time.time())
        client = CitadelClient(f"127.0.0.1:{citadel.port}", token=lambda: token)
        m = CertificateManager(identity, client, policy=RenewalPolicy(bundle_refresh=1e9), dns_names=dns_names)
        m.start()
        started.append(m)
        await m.wait_ready(10)
        return m

    async def pilot(dns_names=CONTROL_PLANE_DNS_NAMES) -> PilotUnderTest:
        m = await manager(ISTIOD, dns_names)
        p = PilotUnderTest(cert_source=lambda: material(m))
        await p.start()
        started.append(p)
        return p

    async def client(p: PilotUnderTest) -> XdsClient:
        m = await manager(WORKLOAD)
        c = XdsClient(p.address, build_node(PRODUCTPAGE), _no_bind_errors, tls=XdsTls(lambda: material(m)),
                      local_secret=lambda n: True, backoff=Backoff(0.05, 0.2))
        started.append(c)
        await c.start()
        return c

    yield manager, pilot, client
    for item in reversed(started):
        await item.stop()
        if isinstance(item, CertificateManager):
            await item.client.close()


async def _no_bind_errors(snapshot):
    return []


async def test_full_config_over_mtls_with_the_proven_identity(mesh):
    _, make_pilot, make_client = mesh
    pilot = await make_pilot()
    client = await make_client(pilot)
    await client.wait_for(lambda c: c.complete, 10)
    await until(lambda: pilot.synced("cds", "eds", "lds", "rds"), what="SYNCED over mTLS")
    (entry,) = pilot.discovery.syncz()
    assert entry.identity == WORKLOAD.uri
    assert pilot.discovery.connections()[0].proxy.service_account == "bookinfo-productpage"


async def test_pilot_without_its_hostname_is_not_trusted(mesh):
    _, make_pilot, make_client = mesh
    pilot = await make_pilot(dns_names=())  # an istiod-identity certificate lacking istiod.istio-system.svc
    client = await make_client(pilot)
    await until(lambda: client.status().last_error != "", 10, what="a failed connection attempt")
    assert not client.connected and client.snapshot is None
    error = client.status().last_error
    assert error.startswith("UNAVAILABLE") and "Hostname mismatch" in error and "istiod.istio-system.svc" in error
    assert pilot.discovery.connections() == []


async def test_the_python_engine_connects_over_mtls(mesh, tmp_path):
    make_manager, make_pilot, _ = mesh
    pilot = await make_pilot()
    workload = await make_manager(WORKLOAD)
    engine = PythonEngine(agent_options(pilot.address, tmp_path, plaintext=False), workload, dataplane=FakeDataPlane,
                          backoff=Backoff(0.05, 0.2))
    await engine.start()
    try:
        await until(lambda: engine.state() == "LIVE", what="engine LIVE over mTLS")
        assert pilot.discovery.syncz()[0].identity == WORKLOAD.uri
        assert engine.core.secrets.get("default").tls_certificate.key.inline == workload.current().key_pem
    finally:
        await engine.stop()
