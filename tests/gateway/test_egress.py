"""Egress end to end: ServiceEntries (DNS, STATIC, NONE), the egress gateway pattern, and the
outbound traffic policy, through a sidecar (explicit capture, the app's HTTP_PROXY).

External services are stand-ins on loopback (the machine has no internet): `localhost` is the
DNS name a DNS ServiceEntry resolves. The egress gateway pattern is Istio's: the sidecar
sends `api.external.test` to the egress gateway over mesh mTLS (DestinationRule
ISTIO_MUTUAL with `sni`), the gateway terminates it (server ISTIO_MUTUAL) and originates
TLS to the external HTTPS stand-in (DestinationRule SIMPLE, CA from a `credentialName`).
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import pytest

from tests.conftest import corpus_path
from tests.gateway.conftest import ENGINES
from tests.helpers.backends import Backend
from tests.helpers.mesh import Gateway, LocalMesh, Sidecar, wait_until
from tests.helpers.procs import ISTHMUS, stop
from tests.helpers.tls_backends import TlsBackend
from tests.helpers.tlsca import TestCA, tls_secret_yaml

EXTERNAL = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external-api}}
spec:
  hosts: [api.external.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{{number: 80, name: http, protocol: HTTP}}, {{number: 443, name: https, protocol: HTTPS}}]
  endpoints: [{{address: localhost, ports: {{https: {https}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: plain-external}}
spec:
  hosts: [plain.external.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: localhost, ports: {{http: {plain}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: static-external}}
spec:
  hosts: [static.external.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {static}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: none-external}}
spec:
  hosts: [none.external.test]
  addresses: [127.0.0.1]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{{number: {none}, name: http, protocol: HTTP}}]
"""

EGRESS_PATTERN = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [api.external.test]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [plain.external.test]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-api}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: api
    trafficPolicy:
      portLevelSettings:
      - port: {number: 443}
        tls: {mode: ISTIO_MUTUAL, sni: api.external.test}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-through-egress-gateway}
spec:
  hosts: [api.external.test]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: api, port: {number: 443}}}]
  - match: [{gateways: [istio-egressgateway], port: 443}]
    headers: {request: {set: {x-via: egress-gateway}}}
    route: [{destination: {host: api.external.test, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: plain-through-egress-gateway}
spec:
  hosts: [plain.external.test]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 80}}}]
  - match: [{gateways: [istio-egressgateway], port: 80}]
    headers: {request: {set: {x-via: egress-gateway}}}
    route: [{destination: {host: plain.external.test, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-tls-for-api, namespace: istio-system}
spec:
  host: api.external.test
  exportTo: ["."]
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, credentialName: external-ca}
"""

# The egress gateway as a mesh service; its ports are known once it runs.
EGRESS_SERVICE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: istio-egressgateway-{engine}, namespace: istio-system}}
spec:
  hosts: [istio-egressgateway.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}, {{number: 443, name: https, protocol: HTTPS}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {http}, https: {https}}}, serviceAccount: istio-egressgateway-service-account}}
"""

REGISTRY_ONLY = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: registry-only}
spec:
  workloadSelector: {labels: {app: sleep}}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("egress")
    ca = TestCA("external-ca")
    backends = {n: Backend(n).start() for n in ("external-http", "static-external", "none-external", "unregistered")}
    https = TlsBackend("external-https", ca.issue("api.external.test", "localhost"), base / "pki").start()
    m = LocalMesh(base).start_control_plane()
    try:
        m.apply(EXTERNAL.format(https=https.port, plain=backends["external-http"].port,
                                static=backends["static-external"].port, none=backends["none-external"].port))
        m.apply(EGRESS_PATTERN)
        m.apply(tls_secret_yaml("external-ca", "istio-system", None, ca=ca.pem))
        yield {"mesh": m, "backends": backends, "https": https}
    finally:
        m.close()
        for b in (*backends.values(), https):
            b.stop()


@dataclass
class Egress:
    mesh: LocalMesh
    sidecar: Sidecar
    gateway: Gateway
    backends: dict
    engine: str

    def get(self, url: str, headers: dict | None = None) -> tuple[int, dict]:
        status, _, body = self.sidecar.proxy_get(url, headers=headers)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {"body": body.decode(errors="replace")}


@pytest.fixture(scope="module", params=ENGINES)
def egress(request, world):
    m, engine = world["mesh"], request.param
    gw = m.add_gateway("istio-egressgateway", labels={"istio": "egressgateway", "app": "istio-egressgateway"},
                       server_ports=(80, 443), engine=engine)
    sidecar = None
    try:
        m.apply(EGRESS_SERVICE.format(engine=engine, http=gw.ports[80], https=gw.ports[443]))
        sidecar = m.add_sidecar(f"sleep-{engine}", service_account="sleep", labels={"app": "sleep"}, engine=engine)
        m.wait_converged(timeout=30)
        e = Egress(m, sidecar, gw, world["backends"], engine)
        wait_until(lambda: e.get("http://static.external.test/")[0] == 200, 20, "sidecar routing")
        yield e
    finally:
        if sidecar is not None:
            stop(sidecar.proc)
        stop(gw.proc)
        m.delete("serviceentry", f"istio-egressgateway-{engine}", "istio-system")


def test_dns_static_and_none_service_entries(egress):
    status, body = egress.get("http://static.external.test/s")
    assert (status, body["backend"]) == (200, "static-external")
    none_port = egress.backends["none-external"].port
    status, body = egress.get(f"http://127.0.0.1:{none_port}/n")  # resolution NONE: the original destination
    assert (status, body["backend"]) == (200, "none-external")


def test_http_through_the_egress_gateway(egress):
    status, body = egress.get("http://plain.external.test/p")  # DNS ServiceEntry behind the egress gateway
    assert (status, body["backend"]) == (200, "external-http")
    assert body["headers"]["x-via"] == "egress-gateway"


def test_mesh_mtls_to_egress_gateway_then_tls_origination(egress):
    wait_until(lambda: egress.get("http://api.external.test/hello")[0] == 200, 15, "egress gateway TLS origination")
    status, body = egress.get("http://api.external.test/hello")
    assert (status, body["backend"], body["path"]) == (200, "external-https", "/hello")
    assert body["headers"]["x-via"] == "egress-gateway"
    # The egress gateway terminated mesh mTLS: it saw (and forwarded) the sidecar's SPIFFE identity.
    assert "URI=spiffe://cluster.local/ns/default/sa/sleep" in body["headers"]["x-forwarded-client-cert"]


def test_registry_only_blocks_unregistered_hosts_and_allow_any_passes_them(egress):
    m = egress.mesh
    unknown = f"http://127.0.0.1:{egress.backends['unregistered'].port}/u"
    status, body = egress.get(unknown)
    assert (status, body.get("backend")) == (200, "unregistered")  # ALLOW_ANY (the default): passthrough
    m.apply(REGISTRY_ONLY)
    try:
        m.wait_converged()
        wait_until(lambda: egress.get(unknown)[0] == 502, 15, "REGISTRY_ONLY in effect")
        assert egress.get("http://static.external.test/")[0] == 200  # registered hosts still reachable
        assert egress.get(f"http://127.0.0.1:{egress.backends['none-external'].port}/")[0] == 200
    finally:
        m.delete("sidecar", "registry-only")
    wait_until(lambda: egress.get(unknown)[0] == 200, 15, "ALLOW_ANY again")


def test_google_apis_egress_rule_validates_and_applies(world):
    path = corpus_path("istio-samples", "bookinfo", "networking", "egress-rule-google-apis.yaml")
    m = world["mesh"]
    res = subprocess.run([*ISTHMUS, "validate", "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = m.apply(path.read_text())
    assert "serviceentry.networking.istio.io/googleapis" in out
    assert "destinationrule.networking.istio.io/originate-tls-for-googleapis" in out
    m.wait_converged(timeout=20)  # every connected proxy accepted the resulting config
