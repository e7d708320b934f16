"""AUTO_PASSTHROUGH (the east-west gateway of multi-network meshes) with real traffic.

A mesh client from another network opens mesh mTLS to the gateway with SNI
`outbound_.PORT_.SUBSET_.HOST`; the gateway routes on that SNI alone, without
terminating TLS, to an endpoint of that service (here a sidecar's inbound port), and
the workload's sidecar terminates the mTLS. The client here is Python's ssl with a
workload certificate from citadel (`isthmus cert request`), offering the mesh's ALPN.
"""
from __future__ import annotations

import json
import socket
import ssl
import subprocess

import pytest

from tests.gateway.conftest import ENGINES
from tests.helpers.backends import Backend
from tests.helpers.mesh import LocalMesh, wait_until
from tests.helpers.procs import ISTHMUS, stop

HOST = "ratings.default.svc.cluster.local"

CONFIG = """
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings-v1}
spec:
  metadata: {labels: {app: ratings, version: v1}}
  template: {serviceAccount: bookinfo-ratings}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network-gateway, namespace: istio-system}
spec:
  selector: {istio: eastwestgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    tls: {mode: AUTO_PASSTHROUGH}
    hosts: ["*.local"]
"""

MESH_ALPN = ["istio-http/1.1", "istio"]  # what a sidecar's mesh mTLS offers for HTTP/1.1


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("eastwest")
    app = Backend("ratings-v1").start()
    m = LocalMesh(base).start_control_plane()
    try:
        m.apply(CONFIG)
        m.add_sidecar("ratings-v1-0", service_account="bookinfo-ratings", labels={"app": "ratings", "version": "v1"},
                      ports={"http": app.port}, workload_group="ratings-v1", engine="python")
        certs = base / "client-certs"
        token = m.token("default", "remote-client")
        res = subprocess.run([*ISTHMUS, "cert", "request", "--ca", f"127.0.0.1:{m.citadel_port}", "--token-file",
                              str(token), "--out", str(certs)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        yield {"mesh": m, "certs": certs, "app": app}
    finally:
        m.close()
        app.stop()


@pytest.fixture(scope="module", params=ENGINES)
def eastwest(request, world):
    g = world["mesh"].add_gateway("istio-eastwestgateway", labels={"istio": "eastwestgateway"},
                                  server_ports=(15443,), engine=request.param)
    try:
        world["mesh"].wait_converged(timeout=30)
        yield g
    finally:
        stop(g.proc)


def mesh_client(certs, alpn=MESH_ALPN) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(certs / "cert-chain.pem", certs / "key.pem")
    ctx.load_verify_locations(certs / "root-cert.pem")
    ctx.check_hostname = False  # mesh identities are SPIFFE URI SANs, checked below
    ctx.set_alpn_protocols(alpn)
    return ctx


def get_through(port: int, certs, sni: str, path: str = "/ratings/0", alpn=MESH_ALPN) -> tuple[dict, bytes]:
    """One HTTP/1.1 request inside mesh mTLS opened to the gateway with `sni`: the server's
    certificate facts and the raw response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with mesh_client(certs, alpn).wrap_socket(raw, server_hostname=sni) as tls:
            peer = tls.getpeercert()
            tls.sendall(f"GET {path} HTTP/1.1\r\nhost: {HOST}:9080\r\nconnection: close\r\n\r\n".encode())
            chunks = []
            while chunk := tls.recv(65536):
                chunks.append(chunk)
    return peer, b"".join(chunks)


def _ok(port: int, certs, sni: str) -> bool:
    try:
        return get_through(port, certs, sni)[1].startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def refused(port: int, certs, sni: str, alpn=MESH_ALPN) -> bool:
    """The gateway closed the connection (during the handshake or before any answer)."""
    try:
        _, raw = get_through(port, certs, sni, alpn=alpn)
    except OSError:  # ssl.SSLError is an OSError
        return True
    return raw == b""


def test_sni_routes_mesh_mtls_straight_to_the_workload(world, eastwest):
    port, certs = eastwest.ports[15443], world["certs"]
    sni = f"outbound_.9080_._.{HOST}"
    wait_until(lambda: _ok(port, certs, sni), 30, "east-west gateway passes mesh mTLS through")
    peer, raw = get_through(port, certs, sni)
    # Not terminated at the gateway: the certificate is the workload's own, and its sidecar saw our identity.
    assert ("URI", "spiffe://cluster.local/ns/default/sa/bookinfo-ratings") in peer["subjectAltName"]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    got = json.loads(body)
    assert got["backend"] == "ratings-v1" and got["path"] == "/ratings/0"
    assert "spiffe://cluster.local/ns/default/sa/remote-client" in got["headers"].get("x-forwarded-client-cert", "")


def test_subset_in_the_sni_picks_the_subset(world, eastwest):
    port, certs = eastwest.ports[15443], world["certs"]
    wait_until(lambda: _ok(port, certs, f"outbound_.9080_.v1_.{HOST}"), 30, "subset v1 served")
    # v2 has no endpoint: the SNI names a cluster, but there is nowhere to send the connection.
    assert refused(port, certs, f"outbound_.9080_.v2_.{HOST}")


def test_unknown_sni_is_refused(world, eastwest):
    port, certs = eastwest.ports[15443], world["certs"]
    wait_until(lambda: _ok(port, certs, f"outbound_.9080_._.{HOST}"), 30, "gateway serving")
    assert refused(port, certs, "outbound_.9080_._.nothing.default.svc.cluster.local")
    assert refused(port, certs, HOST)  # a plain host name is not an AUTO_PASSTHROUGH SNI
    # Only mesh mTLS passes: the right SNI with a plain client's ALPN matches no chain.
    assert refused(port, certs, f"outbound_.9080_._.{HOST}", alpn=["http/1.1"])
