"""Pilot + a real Envoy sidecar (agent --engine envoy, mTLS xDS, SDS from the agent).

Real Envoy is the oracle: every resource pilot sends is ACKed, and traffic through
the sidecar lands where Istio's docs say.
"""
from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from tests.conftest import corpus_path
from tests.helpers.backends import Backend
from tests.helpers.mesh import LocalMesh, wait_until
from tests.pilot.envoy_validate import needs_envoy

pytestmark = [needs_envoy, pytest.mark.envoy]

SERVICES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: reviews}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v1}}
spec: {{address: 127.0.0.1, labels: {{app: reviews, version: v1}}, ports: {{http: {v1}}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v2}}
spec: {{address: 127.0.0.1, labels: {{app: reviews, version: v2}}, ports: {{http: {v2}}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v3}}
spec: {{address: 127.0.0.1, labels: {{app: reviews, version: v3}}, ports: {{http: {v3}}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ratings}}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, labels: {{app: ratings, version: v1}}, ports: {{http: {ratings}}}}}]
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    backends = {n: Backend(n).start() for n in ("reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1")}
    m = LocalMesh(tmp_path_factory.mktemp("mesh")).start_control_plane()
    try:
        m.apply(SERVICES.format(v1=backends["reviews-v1"].port, v2=backends["reviews-v2"].port,
                                v3=backends["reviews-v3"].port, ratings=backends["ratings-v1"].port))
        m.apply(corpus_path("istio-samples", "bookinfo", "networking", "destination-rule-all.yaml").read_text())
        sidecar = m.add_sidecar("productpage-v1", service_account="bookinfo-productpage",
                                labels={"app": "productpage", "version": "v1"}, engine="envoy")
        m.wait_converged()
        yield m, sidecar, backends
    finally:
        m.close()
        for b in backends.values():
            b.stop()


def _apply_corpus(m: LocalMesh, name: str) -> None:
    m.apply(corpus_path("istio-samples", "bookinfo", "networking", name).read_text())
    m.wait_converged()


def _backend(sidecar, url="http://reviews:9080/", headers=None) -> str:
    status, _, body = sidecar.proxy_get(url, headers=headers)
    assert status == 200, (status, body[:300])
    return json.loads(body)["backend"]


def test_every_resource_is_acked(mesh):
    m, _, _ = mesh
    entries = m.syncz()
    assert entries, "no proxy connected"
    entry = entries[0]
    assert entry["identity"] == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    assert {t: v["state"] for t, v in entry["types"].items()} == {"cds": "SYNCED", "eds": "SYNCED", "lds": "SYNCED", "rds": "SYNCED"}


def test_all_v1_routes_only_to_v1(mesh):
    m, sidecar, _ = mesh
    _apply_corpus(m, "virtual-service-all-v1.yaml")
    wait_until(lambda: _backend(sidecar) == "reviews-v1", 10, "v1 routing in effect")
    assert {_backend(sidecar) for _ in range(30)} == {"reviews-v1"}


def test_jason_header_routing(mesh):
    m, sidecar, _ = mesh
    _apply_corpus(m, "virtual-service-reviews-jason-v2-v3.yaml")
    wait_until(lambda: _backend(sidecar, headers={"end-user": "jason"}) == "reviews-v2", 10, "jason → v2")
    assert {_backend(sidecar, headers={"end-user": "jason"}) for _ in range(10)} == {"reviews-v2"}
    assert {_backend(sidecar) for _ in range(10)} == {"reviews-v3"}


def test_weighted_split_within_binomial_bound(mesh):
    m, sidecar, _ = mesh
    _apply_corpus(m, "virtual-service-reviews-80-20.yaml")
    wait_until(lambda: _backend(sidecar) in ("reviews-v1", "reviews-v2") and
               all(_backend(sidecar) != "reviews-v3" for _ in range(5)), 10, "80/20 in effect")
    n = 300
    counts = Counter(_backend(sidecar) for _ in range(n))
    assert set(counts) <= {"reviews-v1", "reviews-v2"}
    # 99.9% two-sided binomial bound around p = 0.8
    sd = math.sqrt(n * 0.8 * 0.2)
    assert abs(counts["reviews-v1"] - 0.8 * n) <= 3.3 * sd, counts


def test_fault_abort_for_jason(mesh):
    m, sidecar, _ = mesh
    _apply_corpus(m, "virtual-service-ratings-test-abort.yaml")

    def aborted() -> bool:
        status, _, _ = sidecar.proxy_get("http://ratings:9080/ratings/0", headers={"end-user": "jason"})
        return status == 500
    wait_until(aborted, 10, "abort fault in effect")
    status, _, _ = sidecar.proxy_get("http://ratings:9080/ratings/0")
    assert status == 200


def test_direct_response_redirect_rewrite_and_retries(mesh):
    m, sidecar, backends = mesh
    m.apply("""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /direct}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: elsewhere.example.com}
  - match: [{uri: {prefix: /api/v1}}]
    rewrite: {uri: /v1api}
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /flaky}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
""")
    m.wait_converged()
    wait_until(lambda: sidecar.proxy_get("http://reviews:9080/direct")[0] == 418, 10, "direct response")
    status, _, body = sidecar.proxy_get("http://reviews:9080/direct")
    assert (status, body) == (418, b"short and stout")
    status, headers, _ = sidecar.proxy_get("http://reviews:9080/old/path")
    assert status == 301 and headers["location"] == "http://elsewhere.example.com/new"
    status, _, body = sidecar.proxy_get("http://reviews:9080/api/v1/x")
    assert status == 200 and json.loads(body)["path"] == "/v1api/x" and json.loads(body)["backend"] == "reviews-v2"
    v3 = backends["reviews-v3"]
    v3.fail_status, v3.fail_first, v3.hits = 503, 2, 0
    try:
        status, _, body = sidecar.proxy_get("http://reviews:9080/flaky")
        assert status == 200 and json.loads(body)["backend"] == "reviews-v3"
        assert v3.hits == 3  # two failures retried, third attempt succeeded
    finally:
        v3.fail_status, v3.fail_first = 0, 0


def _cli(m: LocalMesh, *args: str):
    import subprocess

    from tests.helpers.procs import ISTHMUS

    return subprocess.run([*ISTHMUS, *args, "--pilot-debug", f"127.0.0.1:{m.pilot_monitoring}"],
                          capture_output=True, text=True, timeout=60)


def test_proxy_status_and_proxy_config_cli(mesh):
    m, _, _ = mesh
    m.wait_converged()
    res = _cli(m, "proxy-status")
    assert res.returncode == 0, res.stdout + res.stderr
    header, row = res.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION"]
    assert row.startswith("productpage-v1.default") and row.split()[2:6] == ["SYNCED"] * 4
    clusters = _cli(m, "proxy-config", "cluster", "productpage-v1.default")
    assert clusters.returncode == 0, clusters.stderr
    assert "SERVICE FQDN" in clusters.stdout
    line = next(l for l in clusters.stdout.splitlines() if l.startswith("reviews.default.svc.cluster.local") and " v2 " in l)
    assert line.split()[1:5] == ["9080", "v2", "outbound", "EDS"]
    eps = _cli(m, "proxy-config", "endpoint", "productpage-v1.default")
    assert "outbound|9080|v1|reviews.default.svc.cluster.local" in eps.stdout and "HEALTHY" in eps.stdout
    routes = _cli(m, "proxy-config", "route", "productpage-v1.default")
    assert "http_proxy" in routes.stdout
    listeners = _cli(m, "proxy-config", "listener", "productpage-v1.default")
    assert "Route: http_proxy" in listeners.stdout
    missing = _cli(m, "proxy-config", "cluster", "nope.default")
    assert missing.returncode == 1 and "no connected proxy" in missing.stderr


DETAILS = """
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: details-v1}
spec:
  metadata: {labels: {app: details, version: v1}}
  template: {serviceAccount: bookinfo-details}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: details}}
"""


def test_auto_registration_and_sidecar_to_sidecar_mtls(mesh):
    m, client, _ = mesh
    app = Backend("details-v1").start()
    try:
        m.apply(DETAILS)
        server = m.add_sidecar("details-v1-0", service_account="bookinfo-details", labels={"app": "details", "version": "v1"},
                               ports={"http": app.port}, workload_group="details-v1", engine="envoy")
        # The proxy's connection created a WorkloadEntry pointing at its inbound port.
        res = _cli_galley(m, "get", "we", "-o", "json")
        items = json.loads(res.stdout)["items"]
        entry = next(i for i in items if i["metadata"]["name"].startswith("details-v1-"))
        assert entry["spec"]["ports"] == {"http": server.inbound_ports["http"]}
        assert entry["spec"]["labels"]["security.istio.io/tlsMode"] == "istio"
        m.wait_converged()
        wait_until(lambda: client.proxy_get("http://details:9080/details/0")[0] == 200, 15, "details reachable")
        status, _, body = client.proxy_get("http://details:9080/details/0")
        got = json.loads(body)
        assert got["backend"] == "details-v1"
        # Auto-mTLS: the server sidecar saw the client's SPIFFE identity (XFCC).
        assert "spiffe://cluster.local/ns/default/sa/bookinfo-productpage" in got["headers"].get("x-forwarded-client-cert", "")
        # Plaintext straight to the sidecar's inbound port still works under PERMISSIVE ...
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{server.inbound_ports['http']}/x", timeout=5) as r:
            assert r.status == 200
        # ... and is refused under STRICT.
        m.apply("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec: {mtls: {mode: STRICT}}\n")
        m.wait_converged()

        def plaintext_refused() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{server.inbound_ports['http']}/x", timeout=3)
                return False
            except OSError:
                return True
        wait_until(plaintext_refused, 10, "STRICT refuses plaintext")
        assert client.proxy_get("http://details:9080/details/0")[0] == 200
        m.delete("pa", "default")
        # Stopping the proxy removes its WorkloadEntry after the grace period.
        from tests.helpers.procs import stop
        stop(server.proc)
        wait_until(lambda: not any(i["metadata"]["name"].startswith("details-v1-")
                                   for i in json.loads(_cli_galley(m, "get", "we", "-o", "json").stdout)["items"]),
                   15, "WorkloadEntry removed")
    finally:
        app.stop()


def _cli_galley(m: LocalMesh, *args: str):
    import subprocess

    from tests.helpers.procs import ISTHMUS

    return subprocess.run([*ISTHMUS, *args, "--galley", f"127.0.0.1:{m.galley_port}"], capture_output=True, text=True, timeout=60)


def test_delta_xds_client_converges_and_routes(mesh):
    m, _, _ = mesh
    _apply_corpus(m, "virtual-service-all-v1.yaml")
    delta = m.add_sidecar("reviews-tester", service_account="tester", labels={"app": "tester"}, engine="envoy", delta=True)
    m.wait_converged()
    entry = next(e for e in m.syncz() if e["name"] == "reviews-tester.default")
    assert entry["delta"] is True
    wait_until(lambda: _backend(delta) == "reviews-v1", 10, "delta client routes")


def test_pilot_serves_last_config_while_galley_is_away(mesh):
    m, sidecar, _ = mesh
    _apply_corpus(m, "virtual-service-reviews-v3.yaml")
    wait_until(lambda: _backend(sidecar) == "reviews-v3", 10, "v3 routing")
    m.stop_galley()
    try:
        assert {_backend(sidecar) for _ in range(10)} == {"reviews-v3"}
        res = subprocess_apply(m, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec: {host: x}\n")
        assert res.returncode == 1 and "cannot reach galley" in res.stderr
    finally:
        m.galley = m.start_galley()
    # Pilot resumes its watch; a change made after galley's return reaches the proxy.
    _apply_corpus(m, "virtual-service-all-v1.yaml")
    wait_until(lambda: _backend(sidecar) == "reviews-v1", 15, "change after galley restart")


def subprocess_apply(m: LocalMesh, text: str):
    import subprocess

    from tests.helpers.procs import ISTHMUS

    return subprocess.run([*ISTHMUS, "apply", "-f", "-", "--galley", f"127.0.0.1:{m.galley_port}"], input=text,
                          capture_output=True, text=True, timeout=60)
