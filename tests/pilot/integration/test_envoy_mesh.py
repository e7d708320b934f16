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
