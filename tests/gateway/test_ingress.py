"""Ingress gateway end to end: Gateway + VirtualService in, curl / TLS clients against the gateway.

One control plane (galley, citadel, pilot) for the module; one `isthmus gateway` per engine,
each Gateway server port mapped to a free loopback port. Stand-in backends are registered
with ServiceEntries; TLS credentials are stored with `isthmus create secret tls`.
"""
from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass

import pytest

from tests.conftest import corpus_path
from tests.gateway.conftest import ENGINES, needs_curl
from tests.helpers.backends import Backend
from tests.helpers.mesh import Gateway, LocalMesh, wait_until
from tests.helpers.procs import ISTHMUS, stop
from tests.helpers.tls_backends import EchoServer, TlsBackend, curl, served_certificate, tls_client
from tests.helpers.tlsca import TestCA

pytestmark = [needs_curl]

SERVER_PORTS = (80, 443, 8080, 8443, 9443, 9444, 31400)

SERVICES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: productpage}}
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {productpage}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: details}}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {details}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure-backend}}
spec:
  hosts: [secure.backend.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 8443, name: tls, protocol: TLS}}]
  endpoints: [{{address: 127.0.0.1, ports: {{tls: {secure}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tcp-echo}}
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9000, name: tcp, protocol: TCP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{tcp: {echo}}}}}]
"""

GATEWAYS = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: https-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-simple, protocol: HTTPS}
    hosts: [simple.example.com]
    tls: {mode: SIMPLE, credentialName: simple-cred}
  - port: {number: 443, name: https-mutual, protocol: HTTPS}
    hosts: [mutual.example.com]
    tls: {mode: MUTUAL, credentialName: mutual-cred}
  - port: {number: 443, name: https-optional, protocol: HTTPS}
    hosts: [optional.example.com]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: mutual-cred}
  - port: {number: 443, name: tls-passthrough, protocol: TLS}
    hosts: [secure.backend.test]
    tls: {mode: PASSTHROUGH}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [simple.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 9443, name: tls-terminate, protocol: TLS}
    hosts: [tcp.example.com]
    tls: {mode: SIMPLE, credentialName: simple-cred}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: wildcard-a}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*.wild.test"]
    tls: {mode: SIMPLE, credentialName: wild-cred}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: wildcard-b}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [b.wild.test]
    tls: {mode: SIMPLE, credentialName: wild-cred}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: example}
spec:
  hosts: [simple.example.com, mutual.example.com, optional.example.com]
  gateways: [https-gateway]
  http:
  - route: [{destination: {host: details, port: {number: 9080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: passthrough}
spec:
  hosts: [secure.backend.test]
  gateways: [https-gateway]
  tls:
  - match: [{sniHosts: [secure.backend.test]}]
    route: [{destination: {host: secure.backend.test, port: {number: 8443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp}
spec:
  hosts: ["*"]
  gateways: [tcp-gateway]
  tcp:
  - route: [{destination: {host: tcp-echo, port: {number: 9000}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wild-a}
spec:
  hosts: [a.wild.test]
  gateways: [wildcard-a]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wild-b}
spec:
  hosts: [b.wild.test]
  gateways: [wildcard-b]
  http:
  - route: [{destination: {host: details, port: {number: 9080}}}]
"""


# Certificates mounted as files (no credentialName): pilot names them `file-cert:` / `file-root:`
# SDS resources that the gateway's own agent reads (both engines).
FILE_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: file-gateway}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 9444, name: https-files, protocol: HTTPS}}
    hosts: [files.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {cert}, privateKey: {key}}}
  - port: {{number: 9444, name: https-files-mutual, protocol: HTTPS}}
    hosts: [files-mutual.example.com]
    tls: {{mode: MUTUAL, serverCertificate: {cert}, privateKey: {key}, caCertificates: {ca}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: files}}
spec:
  hosts: [files.example.com, files-mutual.example.com]
  gateways: [file-gateway]
  http:
  - route: [{{destination: {{host: productpage, port: {{number: 9080}}}}}}]
"""


def _isthmus(m: LocalMesh, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ISTHMUS, *args, "--galley", f"127.0.0.1:{m.galley_port}"], capture_output=True, text=True,
                          timeout=60)


def create_tls_secret(m: LocalMesh, name: str, leaf, directory, ca_file=None) -> None:
    cert, key = leaf.write(directory, name)
    args = ["create", "secret", "tls", name, "-n", "istio-system", "--cert", str(cert), "--key", str(key)]
    if ca_file is not None:
        args += ["--cacert", str(ca_file)]
    res = _isthmus(m, *args)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() in (f"secret/{name} created", f"secret/{name} configured"), res.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Control plane + backends + config, shared by both engines' gateways."""
    base = tmp_path_factory.mktemp("ingress")
    ca, other_ca = TestCA("ingress-ca"), TestCA("untrusted-ca")
    pki = base / "pki"
    backends = {"productpage": Backend("productpage").start(), "details": Backend("details").start()}
    secure = TlsBackend("secure-backend", ca.issue("secure.backend.test"), pki).start()
    echo = EchoServer("echo").start()
    m = LocalMesh(base).start_control_plane()
    try:
        m.apply(SERVICES.format(productpage=backends["productpage"].port, details=backends["details"].port,
                                secure=secure.port, echo=echo.port))
        m.apply(corpus_path("istio-samples", "bookinfo", "networking", "bookinfo-gateway.yaml").read_text())
        m.apply(GATEWAYS)
        ca_file = ca.write_ca(pki)
        create_tls_secret(m, "simple-cred", ca.issue("simple.example.com", "tcp.example.com"), pki)
        create_tls_secret(m, "mutual-cred", ca.issue("mutual.example.com", "optional.example.com"), pki, ca_file)
        create_tls_secret(m, "wild-cred", ca.issue("*.wild.test"), pki)
        file_cert, file_key = ca.issue("files.example.com", "files-mutual.example.com").write(pki, "files")
        m.apply(FILE_GATEWAY.format(cert=file_cert, key=file_key, ca=ca_file))
        yield {"mesh": m, "ca": ca, "ca_file": ca_file, "pki": pki, "backends": backends, "other_ca": other_ca}
    finally:
        m.close()
        for b in (*backends.values(), secure, echo):
            b.stop()


@dataclass
class Ingress:
    """One engine's gateway and the world it serves."""

    gateway: Gateway
    world: dict
    engine: str

    def url(self, port: int, path: str = "/") -> str:
        return self.gateway.url(port, path)

    def port(self, server_port: int) -> int:
        return self.gateway.ports[server_port]

    def https(self, host: str, port: int, path: str = "/", *args: str):
        listen = self.port(port)
        return curl(f"https://{host}:{listen}{path}", "--cacert", str(self.world["ca_file"]), *args, resolve=(host, listen))

    def client_cert(self, name: str, ca: str = "ca") -> tuple[str, str]:
        cert, key = self.world[ca].issue(name, client=True).write(self.world["pki"], name)
        return str(cert), str(key)


@pytest.fixture(scope="module", params=ENGINES)
def gw(request, world):
    g = world["mesh"].add_gateway("istio-ingressgateway", server_ports=SERVER_PORTS, engine=request.param)
    try:
        world["mesh"].wait_converged(timeout=30)
        wait_until(lambda: curl(g.url(8080, "/productpage")).status == 200, 20, "ingress serving")
        yield Ingress(g, world, request.param)
    finally:
        stop(g.proc)


def _backend_of(res) -> str:
    assert res.status == 200, (res.status, res.stderr, res.headers, res.body[:200])
    return json.loads(res.body)["backend"]


# ---------------------------------------------------------------- HTTP: the Bookinfo gateway, unchanged

def test_bookinfo_gateway_exposes_productpage_paths(gw):
    for path in ("/productpage", "/static/css/style.css", "/login", "/logout", "/api/v1/products", "/api/v1/products/0"):
        res = curl(gw.url(8080, path))
        assert _backend_of(res) == "productpage", path
        assert json.loads(res.body)["path"] == path
    assert curl(gw.url(8080, "/admin")).status == 404
    assert curl(gw.url(8080, "/productpage/x")).status == 404  # exact match only


def test_http_server_with_https_redirect_answers_301(gw):
    res = curl(f"http://simple.example.com:{gw.port(80)}/a?b=c", resolve=("simple.example.com", gw.port(80)))
    assert res.status == 301, res.headers
    location = next(line.split(":", 1)[1].strip() for line in res.headers.splitlines() if line.lower().startswith("location:"))
    assert location.startswith("https://simple.example.com") and location.endswith("/a?b=c")


# ---------------------------------------------------------------- HTTPS termination

def test_simple_tls_with_credential_from_a_secret(gw):
    assert _backend_of(gw.https("simple.example.com", 443, "/x")) == "details"
    h2 = gw.https("simple.example.com", 443, "/x", "--http2")
    assert h2.headers.startswith("HTTP/2 200"), h2.headers
    assert gw.https("unknown.example.com", 443).code != 0  # an SNI no server names: no filter chain, no TLS


def test_mutual_tls_requires_a_client_certificate(gw):
    cert, key = gw.client_cert("client")
    rogue_cert, rogue_key = gw.client_cert("rogue", ca="other_ca")
    assert gw.https("mutual.example.com", 443).code != 0  # no certificate: handshake refused
    assert gw.https("mutual.example.com", 443, "/", "--cert", rogue_cert, "--key", rogue_key).code != 0
    res = gw.https("mutual.example.com", 443, "/", "--cert", cert, "--key", key)
    assert _backend_of(res) == "details"
    assert "Subject=\"CN=client\"" in json.loads(res.body)["headers"].get("x-forwarded-client-cert", "")


def test_optional_mutual_requests_but_does_not_require(gw):
    cert, key = gw.client_cert("optional-client")
    anonymous = gw.https("optional.example.com", 443)
    assert _backend_of(anonymous) == "details"
    assert "x-forwarded-client-cert" not in json.loads(anonymous.body)["headers"]
    res = gw.https("optional.example.com", 443, "/", "--cert", cert, "--key", key)
    assert "CN=optional-client" in json.loads(res.body)["headers"].get("x-forwarded-client-cert", "")


def test_wildcard_certificate_shared_by_two_gateways_answers_421_on_reuse(gw):
    assert _backend_of(gw.https("a.wild.test", 8443)) == "productpage"
    assert _backend_of(gw.https("b.wild.test", 8443)) == "details"
    # HTTP/2 connection reuse: the TLS session (SNI a.wild.test, certificate *.wild.test) carries a
    # request for b.wild.test, which the SNI of its own chain would route elsewhere: 421, not misrouted.
    reused = gw.https("a.wild.test", 8443, "/", "--http2", "-H", "Host: b.wild.test")
    assert reused.status == 421, reused.headers
    assert gw.https("b.wild.test", 8443, "/", "--http2", "-H", "Host: a.wild.test").status == 421


def test_certificates_from_files_without_a_secret(gw):
    assert _backend_of(gw.https("files.example.com", 9444, "/f")) == "productpage"
    cert, key = gw.client_cert("file-client")
    assert gw.https("files-mutual.example.com", 9444).code != 0  # MUTUAL: caCertificates from a file, required
    res = gw.https("files-mutual.example.com", 9444, "/", "--cert", cert, "--key", key)
    assert _backend_of(res) == "productpage"


# ---------------------------------------------------------------- TLS passthrough, TCP

def test_passthrough_routes_by_sni_without_terminating(gw):
    res = gw.https("secure.backend.test", 443, "/through")
    assert _backend_of(res) == "secure-backend"  # the backend's own certificate verified end to end
    assert served_certificate(gw.port(443), "secure.backend.test") != served_certificate(gw.port(443), "simple.example.com")


def test_tcp_server_proxies_bytes(gw):
    with socket.create_connection(("127.0.0.1", gw.port(31400)), timeout=5) as s:
        s.sendall(b"ping")
        assert s.recv(100) == b"echo:ping"


def test_tls_server_terminates_then_proxies_tcp(gw):
    answer, _ = tls_client(gw.port(9443), "tcp.example.com", gw.world["ca_file"], b"hello")
    assert answer == b"echo:hello"


# ---------------------------------------------------------------- credentials: rotation, redaction

def test_secret_rotation_reaches_the_gateway_without_restart(gw):
    m, ca, pki = gw.world["mesh"], gw.world["ca"], gw.world["pki"]
    proc = gw.gateway.proc
    before = served_certificate(gw.port(443), "simple.example.com")
    create_tls_secret(m, "simple-cred", ca.issue("simple.example.com", "tcp.example.com"), pki / f"rotated-{gw.engine}")
    wait_until(lambda: served_certificate(gw.port(443), "simple.example.com") != before, 15, "rotated certificate served")
    assert proc.poll() is None  # same process: no restart
    assert _backend_of(gw.https("simple.example.com", 443)) == "details"


def test_get_secret_never_prints_the_private_key(world):
    m = world["mesh"]
    for out in ("yaml", "json"):
        res = _isthmus(m, "get", "secret", "mutual-cred", "-n", "istio-system", "-o", out)
        assert res.returncode == 0, res.stderr
        assert "REDACTED" in res.stdout and "tls.crt" in res.stdout and "ca.crt" in res.stdout
        assert "PRIVATE KEY" not in res.stdout and "UFJJVkFURSBLRVk" not in res.stdout  # nor its base64
    table = _isthmus(m, "get", "secrets", "-n", "istio-system")
    assert table.stdout.split("\n")[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert "kubernetes.io/tls" in table.stdout
