"""Istio's traffic-management tasks on Bookinfo, with the corpus files applied unchanged.

Runs once per engine (python, envoy): the same promises hold for both.
"""
from __future__ import annotations

import math
import time
from collections import Counter

import pytest

BASE_ROUTES = ("productpage", "reviews", "ratings", "details")


def _reset(mesh) -> None:
    mesh.delete_vs(*BASE_ROUTES)
    mesh.cli("delete", "pa", "default", "-n", "istio-system", "--ignore-not-found")


def _binomial_ok(count: int, n: int, p: float) -> bool:
    """Within a two-sided 99.9% normal bound (|z| <= 3.29)."""
    sd = math.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= 3.29 * sd + 1


def test_virtual_service_all_v1(mesh):
    _reset(mesh)
    took = mesh.apply_corpus("virtual-service-all-v1.yaml")
    converge = mesh.wait_for(lambda: all(mesh.served_by() == "reviews-v1" for _ in range(5)), 15, "all v1")
    print(f"[{mesh.engine}] apply {took:.2f}s, traffic converged {converge:.2f}s after apply")
    assert {mesh.served_by() for _ in range(50)} == {"reviews-v1"}


@pytest.mark.parametrize(
    "name,expected",
    [
        ("virtual-service-reviews-90-10.yaml", {"reviews-v1": 0.9, "reviews-v2": 0.1}),
        ("virtual-service-reviews-80-20.yaml", {"reviews-v1": 0.8, "reviews-v2": 0.2}),
        ("virtual-service-reviews-50-v3.yaml", {"reviews-v1": 0.5, "reviews-v3": 0.5}),
    ],
)
def test_weighted_splits(mesh, name, expected):
    mesh.apply_corpus("virtual-service-all-v1.yaml", name)
    allowed = set(expected)
    # converged: nothing outside the split for a while
    mesh.wait_for(lambda: all(mesh.served_by() in allowed for _ in range(20)), 15, f"{name} in effect")
    n = 300
    counts = Counter(mesh.served_by() for _ in range(n))
    assert set(counts) <= allowed, counts
    for version, p in expected.items():
        assert _binomial_ok(counts[version], n, p), (name, counts)


def test_jason_routing(mesh):
    mesh.apply_corpus("virtual-service-all-v1.yaml", "virtual-service-reviews-jason-v2-v3.yaml")
    mesh.wait_for(lambda: mesh.served_by("jason") == "reviews-v2" and mesh.served_by() == "reviews-v3", 15, "jason → v2")
    assert {mesh.served_by("jason") for _ in range(10)} == {"reviews-v2"}
    assert {mesh.served_by() for _ in range(10)} == {"reviews-v3"}
    assert {mesh.served_by("alice") for _ in range(5)} == {"reviews-v3"}


def test_reviews_test_v2(mesh):
    mesh.apply_corpus("virtual-service-all-v1.yaml", "virtual-service-reviews-test-v2.yaml")
    mesh.wait_for(lambda: mesh.served_by("jason") == "reviews-v2", 15, "test-v2 in effect")
    assert {mesh.served_by("jason") for _ in range(10)} == {"reviews-v2"}
    assert {mesh.served_by() for _ in range(10)} == {"reviews-v1"}


def test_ratings_delay_for_jason(mesh):
    mesh.apply_corpus("virtual-service-all-v1.yaml", "virtual-service-reviews-test-v2.yaml",
                      "virtual-service-ratings-test-delay.yaml")
    mesh.wait_for(lambda: mesh.served_by("jason") == "reviews-v2", 15, "jason on v2")

    def delayed() -> bool:
        status, body, took = mesh.page("jason")
        return status == 200 and "product reviews are currently unavailable" in body

    mesh.wait_for(delayed, 40, "delay fault in effect")
    status, body, took = mesh.page("jason")
    assert status == 200
    assert "Sorry, product reviews are currently unavailable for this book." in body
    # productpage gives up after its own timeouts (2 × 3 s), well before the 7 s delay × 2
    assert took < 10, took
    status, body, took = mesh.page()
    assert status == 200 and "reviews-v1" in body and took < 3


def test_ratings_abort_for_jason(mesh):
    mesh.apply_corpus("virtual-service-all-v1.yaml", "virtual-service-reviews-test-v2.yaml",
                      "virtual-service-ratings-test-abort.yaml")
    mesh.wait_for(lambda: "Ratings service is currently unavailable" in mesh.page("jason")[1], 15, "abort in effect")
    status, body, _ = mesh.page("jason")
    assert status == 200 and "Ratings service is currently unavailable" in body
    assert "Ratings service is currently unavailable" not in mesh.page()[1]


def test_details_faults(mesh):
    mesh.apply_corpus("virtual-service-all-v1.yaml", "fault-injection-details-v1.yaml")
    mesh.wait_for(lambda: "product details are currently unavailable" in mesh.page()[1], 15, "details abort")
    mesh.apply_corpus("virtual-service-details-v2.yaml")
    # No details v2 runs locally: the subset has no endpoints (503 UH), the page says so.
    mesh.wait_for(lambda: "product details are currently unavailable" in mesh.page()[1], 15, "details v2")
    mesh.apply_corpus("virtual-service-all-v1.yaml")
    mesh.wait_for(lambda: "product details are currently unavailable" not in mesh.page()[1], 15, "details back")


def test_strict_mtls_refuses_plaintext_to_sidecars(mesh):
    import urllib.request

    mesh.apply_corpus("virtual-service-all-v1.yaml", "destination-rule-all-mtls.yaml")
    res = mesh.cli("apply", "-f", "-", stdin="apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                   "metadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n")
    assert res.returncode == 0, res.stderr
    inbound = mesh.state["components"]["reviews-v1-sidecar"]["urls"]["inbound"]

    def refused() -> bool:
        try:
            urllib.request.urlopen(f"http://{inbound}/reviews/0", timeout=3)
            return False
        except OSError:
            return True

    mesh.wait_for(refused, 15, "plaintext refused under STRICT")
    assert mesh.wait_for(lambda: mesh.served_by() == "reviews-v1", 15, "mesh traffic under STRICT") >= 0
    assert {mesh.served_by() for _ in range(10)} == {"reviews-v1"}
    mesh.cli("delete", "pa", "default", "-n", "istio-system")
    mesh.apply_corpus("destination-rule-all.yaml")


def test_sidecar_agents_load_neither_grpcio_nor_cryptography(mesh):
    """After mTLS traffic and certificate issuance, no sidecar or gateway agent has
    cryptography's native library mapped (keys are made in a forked child), and with the
    python engine not grpcio's either (the agent speaks gRPC itself; the Envoy engine's
    agent serves SDS with grpcio). Each would cost every sidecar ~8-12 MiB."""
    assert mesh.served_by() in {"reviews-v1", "reviews-v2", "reviews-v3"}
    proxies = {n: c["pid"] for n, c in mesh.state["components"].items()
               if n.endswith("-sidecar") or "gateway" in n}
    assert len(proxies) >= 5, proxies
    banned = ("/cryptography/hazmat/bindings/",) + (("/grpc/_cython/",) if mesh.engine == "python" else ())
    for name, pid in proxies.items():
        with open(f"/proc/{pid}/maps") as f:
            libs = {line.split()[-1] for line in f if ".so" in line}
        heavy = sorted(p for p in libs if any(b in p for b in banned))
        assert heavy == [], f"{name} (pid {pid}) maps {heavy}"
