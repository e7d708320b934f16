"""Our networking YAML and platform/local.yaml validate, agree with the topology and with Istio's files."""
from __future__ import annotations

import pytest

from isthmus.samples.bookinfo import topology
from isthmus.shared.config.documents import read_paths
from isthmus.shared.config.validation import validate_document
from tests.conftest import corpus_path


def _resources(*paths) -> dict[tuple[str, str], dict]:
    out = {}
    for doc in read_paths([str(p) for p in paths]):
        outcome = validate_document(doc.body, source=doc.source)
        assert outcome.ok and not outcome.warnings, (outcome.errors, outcome.warnings)
        out[(outcome.resource.kind, outcome.resource.meta.name)] = outcome.resource.spec
    return out


def test_networking_validates_with_istios_names() -> None:
    got = _resources(topology.NETWORKING_DIR)
    assert set(got) == {
        ("Gateway", "bookinfo-gateway"), ("VirtualService", "bookinfo"),
        *{("DestinationRule", name) for name in topology.SERVICES},
    }
    subsets = {host: {s["name"] for s in got[("DestinationRule", host)]["subsets"]} for host in topology.SERVICES}
    for app in topology.APPS:
        assert app.version in subsets[app.name]
    assert subsets["reviews"] == {"v1", "v2", "v3"}


@pytest.mark.parametrize("name", ["bookinfo-gateway.yaml", "destination-rule-all.yaml"])
def test_networking_matches_istios_semantics(name: str) -> None:
    istio = _resources(corpus_path("istio-samples", "bookinfo", "networking", name))
    assert _resources(topology.NETWORKING_DIR / name) == istio


def test_local_platform_registers_every_app() -> None:
    got = _resources(topology.LOCAL_PLATFORM)
    assert set(got) == {("ServiceEntry", s) for s in topology.SERVICES} | {
        ("WorkloadGroup", app.workload_group) for app in topology.APPS}
    for service in topology.SERVICES:
        se = got[("ServiceEntry", service)]
        assert se["hosts"] == [f"{service}.default.svc.cluster.local"]
        assert (se["location"], se["resolution"]) == ("MESH_INTERNAL", "STATIC")
        assert se["ports"] == [{"number": 9080, "name": "http", "protocol": "HTTP"}]
        assert se["workloadSelector"] == {"labels": {"app": service}}
    for app in topology.APPS:
        wg = got[("WorkloadGroup", app.workload_group)]
        assert wg["metadata"]["labels"] == dict(app.labels)
        assert wg["template"]["serviceAccount"] == app.service_account


def test_topology_matches_istios_deployments() -> None:
    assert [app.workload_group for app in topology.APPS] == [
        "productpage-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1"]
    for app in topology.APPS:
        assert app.service_account == f"bookinfo-{app.name}"
        assert dict(app.labels) == {"app": app.name, "version": app.version}
        assert app.host == f"{app.name}.default.svc.cluster.local" and app.port == 9080
