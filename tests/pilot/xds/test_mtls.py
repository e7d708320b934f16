"""ADS over mTLS: the client certificate's SPIFFE id is the proxy's identity."""
from __future__ import annotations

import grpc
import pytest

from isthmus.pilot.xds import typeurls as T
from isthmus.pilot.xds.server import add_ads_ports
from isthmus.pilot.push.debounce import DebounceSettings
from isthmus.pilot.xds.discovery import DiscoveryServer
from tests.pilot.xds.certs import CA
from tests.pilot.xds.harness import AdsClient, FakeMesh, make_node, names_of


class Pilot:
    def __init__(self):
        self.ca = CA()
        self.serving = (*self.ca.leaf(["spiffe://cluster.local/ns/istio-system/sa/istiod"], server=True), self.ca.pem)

    def cert_source(self):
        chain, key, roots = self.serving
        return chain, key, roots


@pytest.fixture
async def tls_pilot():
    pilot = Pilot()
    mesh = FakeMesh()
    ds = DiscoveryServer(mesh.build, generators=mesh.generators(), initial_push=mesh.initial(),
                         debounce=DebounceSettings(quiet=0.01, max_delay=0.1))
    await ds.start()
    server = grpc.aio.server()
    ports = add_ads_ports(server, ds.ads, mtls_address="127.0.0.1:0", cert_source=pilot.cert_source)
    await server.start()
    pilot.port, pilot.discovery = ports.mtls, ds
    channels = []

    def channel(ca: CA, uris: list[str], trust: bytes | None = None):
        cert, key = ca.leaf(uris)
        creds = grpc.ssl_channel_credentials(root_certificates=trust or pilot.ca.pem, private_key=key,
                                             certificate_chain=cert)
        ch = grpc.aio.secure_channel(f"127.0.0.1:{pilot.port}", creds)
        channels.append(ch)
        return ch

    pilot.channel = channel
    try:
        yield pilot
    finally:
        for ch in channels:
            await ch.close()
        await server.stop(0)
        await ds.stop()


async def test_matching_identity_is_served(tls_pilot):
    ch = tls_pilot.channel(tls_pilot.ca, ["spiffe://cluster.local/ns/team-a/sa/reviews"])
    c = AdsClient(ch, make_node("reviews-v1", "team-a", SERVICE_ACCOUNT="reviews"))
    await c.request(T.CLUSTER)
    assert len(names_of(await c.recv())) == 2
    (entry,) = tls_pilot.discovery.syncz()
    assert entry.identity == "spiffe://cluster.local/ns/team-a/sa/reviews"
    assert tls_pilot.discovery.connections()[0].proxy.service_account == "reviews"
    await c.close()


async def test_claiming_another_namespace_is_refused(tls_pilot):
    ch = tls_pilot.channel(tls_pilot.ca, ["spiffe://cluster.local/ns/team-a/sa/reviews"])
    c = AdsClient(ch, make_node("reviews-v1", "team-b", SERVICE_ACCOUNT="reviews"))
    await c.request(T.CLUSTER)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.recv()
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "spiffe://cluster.local/ns/team-a/sa/reviews" in err.value.details()
    assert "spiffe://cluster.local/ns/team-b/sa/reviews" in err.value.details()
    assert tls_pilot.discovery.connections() == []


async def test_certificate_without_spiffe_id_is_refused(tls_pilot):
    ch = tls_pilot.channel(tls_pilot.ca, [])
    c = AdsClient(ch, make_node())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.request(T.CLUSTER)  # refused before the first request is read: the write may fail already
        await c.recv()
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "SPIFFE" in err.value.details()


async def test_untrusted_client_certificate_fails_the_handshake(tls_pilot):
    ch = tls_pilot.channel(CA("rogue"), ["spiffe://cluster.local/ns/team-a/sa/reviews"])
    c = AdsClient(ch, make_node("reviews-v1", "team-a"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await c.request(T.CLUSTER)
        await c.recv(timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert tls_pilot.discovery.connections() == []


async def test_rotated_certificates_apply_to_new_connections(tls_pilot):
    new_ca = CA("rotated")
    tls_pilot.serving = (*new_ca.leaf(["spiffe://cluster.local/ns/istio-system/sa/istiod"], server=True), new_ca.pem)
    ch = tls_pilot.channel(new_ca, ["spiffe://cluster.local/ns/team-a/sa/reviews"], trust=new_ca.pem)
    c = AdsClient(ch, make_node("reviews-v1", "team-a"))
    await c.request(T.CLUSTER)
    assert (await c.recv()).type_url == T.CLUSTER
    await c.close()
