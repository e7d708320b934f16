"""Mesh mTLS as traffic: inbound STRICT / PERMISSIVE, XFCC, upstream ISTIO_MUTUAL with
SAN verification — two data planes talking to each other."""
from __future__ import annotations

import pytest

from isthmus.pilot.model.proxy import WorkloadPort
from isthmus.proxy.runtime import NodeInfo
from tests.pilot.fixtures import sidecar
from tests.proxy.runtime.helpers import Backend, RawClient, build_snapshot, dataplane, pki, proxy_get

STRICT = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
"""
REVIEWS = NodeInfo.from_workload("reviews-v1", "default", "reviews", {"app": "reviews", "version": "v1"})


def reviews_sidecar(app_port: int):
    return sidecar(name="reviews-v1", labels={"app": "reviews", "version": "v1"}, service_account="reviews",
                   ports=(WorkloadPort(port=app_port, name="http", protocol="HTTP", proxy_port=15080),))


def inbound_port(ports: dict) -> int:
    return next(p for name, p in ports.items() if name.endswith("_15080"))


@pytest.fixture
async def app():
    b = await Backend("reviews").start()
    yield b
    await b.stop()


async def test_strict_refuses_plaintext_accepts_mesh_mtls_with_xfcc(app):
    snap, ports = build_snapshot(STRICT, proxy=reviews_sidecar(app.port))
    async with dataplane(snap, secrets=pki().secrets("reviews"), node=REVIEWS) as dp:
        port = inbound_port(ports)
        plain = await RawClient.connect(port)
        await plain.send_raw(b"GET / HTTP/1.1\r\nhost: reviews\r\n\r\n")
        assert await plain.closed()
        await plain.close()
        assert not app.requests
        client = await RawClient.connect(port, ssl=pki().client_context("productpage"), server_hostname="reviews")
        r = await client.request("GET", "/reviews/1", {"host": "reviews:9080"})
        await client.close()
        assert r.status == 200, r
        xfcc = {k.lower(): v for k, v in r.json()["headers"].items()}["x-forwarded-client-cert"]
        parts = dict(p.split("=", 1) for p in xfcc.split(";"))
        assert parts["By"] == pki().spiffe("reviews")
        assert parts["URI"] == pki().spiffe("productpage")
        assert len(parts["Hash"]) == 64
        text = dp.stats.render_prometheus()
        assert 'reporter="destination"' in text and 'connection_security_policy="mutual_tls"' in text
        assert f'source_principal="{pki().spiffe("productpage")}"' in text
        # A client without a certificate is refused at the handshake.
        anonymous = pki().client_context(None)
        with pytest.raises((ConnectionError, OSError, AssertionError, TimeoutError)):
            c = await RawClient.connect(port, ssl=anonymous, server_hostname="reviews")
            r = await c.request("GET", "/", {"host": "reviews"})
            assert r.status == 200


async def test_permissive_serves_both(app):
    snap, ports = build_snapshot("", proxy=reviews_sidecar(app.port))
    async with dataplane(snap, secrets=pki().secrets("reviews"), node=REVIEWS):
        port = inbound_port(ports)
        plain = await RawClient.connect(port)
        r = await plain.request("GET", "/plain", {"host": "reviews:9080"})
        await plain.close()
        assert r.status == 200
        assert "x-forwarded-client-cert" not in {k.lower() for k in r.json()["headers"]}
        tls = await RawClient.connect(port, ssl=pki().client_context("productpage"), server_hostname="reviews")
        r = await tls.request("GET", "/tls", {"host": "reviews:9080"})
        await tls.close()
        assert r.status == 200 and "x-forwarded-client-cert" in {k.lower() for k in r.json()["headers"]}


def mesh_service(port: int, sa: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}, serviceAccount: {sa},
               labels: {{app: reviews, version: v1, security.istio.io/tlsMode: istio}}}}]
"""


async def test_sidecar_to_sidecar_istio_mutual_and_san_check(app):
    server_snap, server_ports = build_snapshot(STRICT, proxy=reviews_sidecar(app.port))
    async with dataplane(server_snap, secrets=pki().secrets("reviews"), node=REVIEWS) as server:
        port = inbound_port(server_ports)
        client_snap, client_ports = build_snapshot(mesh_service(port, "reviews"))
        async with dataplane(client_snap) as client:
            r = await proxy_get(client_ports["http_proxy"], "http://reviews.default.svc.cluster.local:9080/r")
            assert r.status == 200, r
            seen = {k.lower(): v for k, v in app.requests[-1]["headers"].items()}
            assert "x-envoy-peer-metadata" not in seen  # the server sidecar strips it
            assert pki().spiffe("bookinfo-productpage") in seen["x-forwarded-client-cert"]
            assert "x-envoy-peer-metadata" not in r.headers  # and the client strips the server's
            text = client.stats.render_prometheus()
            assert 'destination_workload="reviews-v1"' in text and 'destination_app="reviews"' in text
            stext = server.stats.render_prometheus()
            assert 'source_workload="productpage-v1"' in stext and 'source_app="productpage"' in stext
        # The server presents the "reviews" identity but the client expects "ratings": refused.
        client_snap, client_ports = build_snapshot(mesh_service(port, "ratings"))
        async with dataplane(client_snap) as client:
            r = await proxy_get(client_ports["http_proxy"], "http://reviews.default.svc.cluster.local:9080/r")
            assert r.status == 503
            assert b"transport failure reason: TLS_error" in r.body
            assert 'response_flags="UF' in client.stats.render_prometheus()


async def test_certificate_rotation_without_dropping_connections(app):
    from isthmus.proxy.config.common import DataSourceConfig
    from isthmus.proxy.config.secrets import SecretConfig
    from isthmus.proxy.config.tls import CertificateConfig

    secrets = pki().secrets("reviews")
    snap, ports = build_snapshot("", proxy=reviews_sidecar(app.port))
    async with dataplane(snap, secrets=secrets, node=REVIEWS):
        port = inbound_port(ports)
        old = await RawClient.connect(port, ssl=pki().client_context("productpage"), server_hostname="reviews")
        assert (await old.request("GET", "/a", {"host": "reviews:9080"})).status == 200
        first = old.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        chain, key = pki().issue(pki().spiffe("reviews"))
        secrets.set(SecretConfig("default", tls_certificate=CertificateConfig(DataSourceConfig(inline=chain),
                                                                              DataSourceConfig(inline=key))))
        new = await RawClient.connect(port, ssl=pki().client_context("productpage"), server_hostname="reviews")
        assert (await new.request("GET", "/b", {"host": "reviews:9080"})).status == 200
        assert new.writer.get_extra_info("ssl_object").getpeercert(binary_form=True) != first
        assert (await old.request("GET", "/c", {"host": "reviews:9080"})).status == 200  # the old one lives on
        await old.close()
        await new.close()
