"""The proxy's ADS client against pilot's real DiscoveryServer and translators (plaintext):
full snapshots ACKed, NACKs with the field path in pilot's syncz, warming, reconnects,
SDS over ADS."""
from __future__ import annotations

import pytest
from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from isthmus.proxy.xds.client import Backoff, XdsClient
from isthmus.proxy.xds.dump import config_dump
from isthmus.proxy.xds.node import build_node
from tests.proxy.config.helpers import chain, listener, parse, sds_secrets
from tests.proxy.xds.pilot import EXTRA_SERVICE, PRODUCTPAGE, PilotUnderTest, until

FAST = Backoff(initial=0.05, maximum=0.2)
SYNCED = ("cds", "eds", "lds", "rds")
EXTRA = "outbound|7070||extra.default.svc.cluster.local"


class Recorder:
    """The engine's side: records published snapshots, reports configurable bind errors."""

    def __init__(self):
        self.snapshots = []
        self.bind_errors: list[str] = []

    async def __call__(self, snapshot):
        self.snapshots.append(snapshot)
        return list(self.bind_errors)


@pytest.fixture
async def pilot():
    p = PilotUnderTest()
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def make_client():
    clients = []

    def factory(pilot: PilotUnderTest, delta: bool = False, recorder: Recorder | None = None, **kw) -> XdsClient:
        c = XdsClient(pilot.address, build_node(PRODUCTPAGE), recorder or Recorder(), delta=delta,
                      local_secret=lambda name: name in ("default", "ROOTCA"), backoff=FAST, **kw)
        clients.append(c)
        return c

    yield factory
    for c in clients:
        await c.stop()


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_full_snapshot_received_applied_and_acked(pilot, make_client, delta):
    rec = Recorder()
    client = make_client(pilot, delta, rec)
    await client.start()
    await client.wait_for(lambda c: c.complete, 10)
    await until(lambda: pilot.synced(*SYNCED), what="cds/eds/lds/rds SYNCED in pilot's syncz")
    (entry,) = pilot.discovery.syncz()
    assert entry.delta is delta and entry.name == "productpage-v1.default"
    assert entry.proxy_id == PRODUCTPAGE.node_id
    snap = client.snapshot
    assert snap is rec.snapshots[-1] and snap.missing().routes == {} and snap.missing().endpoints == {}
    assert "http_proxy" in snap.listeners and "http_proxy" in snap.routes
    assert "outbound|9080||reviews.default.svc.cluster.local" in snap.endpoints
    # CDS, EDS, LDS and RDS arrived separately; only the complete result was published.
    assert len(rec.snapshots) == 1
    status = client.status()
    assert status.connected and status.complete and status.missing == {}
    versions = {t.type: t.version for t in status.types}
    assert versions["cds"] == versions["lds"] == entry.type_sync("cds").acked_version != ""


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_unsupported_resource_is_nacked_with_its_field_path(pilot, make_client, delta):
    client = make_client(pilot, delta)
    await client.start()
    await until(lambda: pilot.synced(*SYNCED), what="initial sync")
    good = client.snapshot
    lds_version = pilot.sync("lds").acked_version
    bad = listener_pb2.Listener(name="freebound", freebind={"value": True}, address=address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=18080)))
    pilot.extra_listeners.append(bad)
    await pilot.push()
    await until(lambda: pilot.sync("lds").state == "STALE (NACK)", what="LDS NACK in syncz")
    error = pilot.sync("lds").nack_error
    assert "'freebound'" in error and "freebind:" in error and "not supported" in error
    assert pilot.sync("lds").acked_version == lds_version  # the proxy keeps its last good version
    assert client.snapshot is good and "freebound" not in client.snapshot.listeners
    lds = next(t for t in client.status().types if t.type == "lds")
    assert lds.nack_error == error and lds.version == lds_version
    # /config_dump shows it as Envoy does: the listener's error_state, nothing active.
    dump = config_dump(build_node(PRODUCTPAGE), client.state)
    listeners = {d["name"]: d for d in dump["configs"][3]["dynamic_listeners"]}
    assert listeners["freebound"]["error_state"]["details"] == error and "active_state" not in listeners["freebound"]
    assert "error_state" not in listeners["http_proxy"] and listeners["http_proxy"]["active_state"]
    # The next good push is taken again.
    pilot.extra_listeners.clear()
    await pilot.push()
    await until(lambda: pilot.sync("lds").state == "SYNCED" and pilot.sync("lds").acked_version != lds_version,
                what="LDS ACKed again")
    assert next(t for t in client.status().types if t.type == "lds").nack_error == ""


async def test_bind_errors_nack_the_listener_update(pilot, make_client):
    rec = Recorder()
    rec.bind_errors = ["listener 'http_proxy' on 127.0.0.1:15001: address already in use"]
    client = make_client(pilot, recorder=rec)
    await client.start()
    await until(lambda: pilot.sync("lds") is not None and pilot.sync("lds").state == "STALE (NACK)", what="LDS NACK")
    assert "address already in use" in pilot.sync("lds").nack_error
    assert pilot.synced("cds", "eds", "rds")
    assert not client.complete or client.state.bind_errors
    rec.bind_errors = []
    await pilot.push()
    await until(lambda: pilot.synced(*SYNCED), what="LDS ACKed once binding works")
    await client.wait_for(lambda c: c.complete and not c.state.bind_errors, 5)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_new_cluster_is_published_with_its_endpoints(pilot, make_client, delta):
    rec = Recorder()
    client = make_client(pilot, delta, rec)
    await client.start()
    await client.wait_for(lambda c: c.complete, 10)
    pilot.yaml += EXTRA_SERVICE
    await pilot.push()
    await client.wait_for(lambda c: c.snapshot is not None and EXTRA in c.snapshot.clusters, 10)
    for snap in rec.snapshots:  # never a cluster whose endpoints are unknown
        assert snap.missing().endpoints == {}, snap.missing()
    assert [str(e.address) for e in client.snapshot.endpoints[EXTRA].endpoints] == ["127.0.0.71:7070"]
    await until(lambda: pilot.synced(*SYNCED), what="sync after the change")
    # Removing it again drops the cluster, its endpoints and the EDS subscription.
    pilot.yaml = pilot.yaml.replace(EXTRA_SERVICE, "")
    await pilot.push()
    await client.wait_for(lambda c: EXTRA not in c.snapshot.clusters, 10)
    assert EXTRA not in client.snapshot.endpoints
    assert EXTRA not in next(t for t in client.status().types if t.type == "eds").subscribed


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_reconnects_after_pilot_restarts_and_keeps_serving(pilot, make_client, delta):
    rec = Recorder()
    client = make_client(pilot, delta, rec)
    await client.start()
    await client.wait_for(lambda c: c.complete, 10)
    serving = client.snapshot
    await pilot.stop()
    await client.wait_for(lambda c: not c.connected, 5)
    assert client.snapshot is serving and client.complete  # the last snapshot keeps serving
    assert client.status().last_error
    await pilot.start()  # same port, a pilot that has never seen this proxy
    await client.wait_for(lambda c: c.connected and c.connects == 2, 10)
    await until(lambda: pilot.synced(*SYNCED), what="SYNCED with the restarted pilot")
    # Same configuration: nothing new to apply (delta: initial_resource_versions skipped it all).
    assert client.snapshot is serving and len(rec.snapshots) == 1
    # And it converges on what the new pilot has.
    pilot.yaml += EXTRA_SERVICE
    await pilot.push()
    await client.wait_for(lambda c: EXTRA in c.snapshot.clusters and EXTRA in c.snapshot.endpoints, 10)


async def test_warming_timeout_publishes_without_what_pilot_never_sends(pilot, make_client):
    rec = Recorder()
    client = make_client(pilot, recorder=rec, warming_timeout=0.3)
    pilot.withheld = {"http_proxy", "outbound|9080||reviews.default.svc.cluster.local"}
    await client.start()
    await client.wait_for(lambda c: c.snapshot is not None, 5)
    snap = client.snapshot
    assert "http_proxy" in snap.listeners and "http_proxy" not in snap.routes
    assert "outbound|9080||reviews.default.svc.cluster.local" not in snap.endpoints
    assert not client.complete  # published, but not ready: something referenced never came
    await until(lambda: pilot.synced(*SYNCED), what="everything ACKed after the warming timeout")
    # When pilot does send them, they are applied at once (no second wait).
    pilot.withheld = set()
    await pilot.push()
    await client.wait_for(lambda c: c.complete, 5)
    assert "http_proxy" in client.snapshot.routes


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_ads_sourced_secrets_are_requested_on_the_same_stream(pilot, make_client, delta):
    name = "kubernetes://bookinfo-cert"
    ads = {"ads": {}, "resource_api_version": "V3"}
    tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": name, "sds_config": ads}]}}}
    pilot.extra_listeners.append(listener([{**chain("tls"), "transport_socket": tls}], name="https",
                                          address={"socket_address": {"address": "127.0.0.1", "port_value": 18443}}))
    secret = secret_pb2.Secret()
    secret.CopyFrom(sds_secrets()["default"])
    secret.name = name
    pilot.secrets = {name: secret, "unrequested": parse(secret_pb2.Secret, {"name": "unrequested"})}
    client = make_client(pilot, delta)
    await client.start()
    await client.wait_for(lambda c: c.complete, 10)
    assert set(client.snapshot.secrets) == {name}
    assert next(t for t in client.status().types if t.type == "sds").subscribed == (name,)
    await until(lambda: pilot.synced(*SYNCED, "sds"), what="SDS ACKed over ADS")
