"""NodeInfo derivations, the peer-metadata encoding, Istio label order, /clusters text."""
from __future__ import annotations

from isthmus.proxy.runtime.node import NodeInfo, decode_peer_metadata
from isthmus.proxy.stats import Stats
from isthmus.proxy.telemetry import IstioTelemetry, from_peer_metadata, from_workload_metadata, service_labels


def test_node_info_from_workload():
    n = NodeInfo.from_workload("reviews-v2-0", "bookinfo", "reviews", {"app": "reviews", "version": "v2"})
    assert (n.canonical_service, n.canonical_revision) == ("reviews", "v2")
    assert n.spiffe_id == "spiffe://cluster.local/ns/bookinfo/sa/reviews"
    bare = NodeInfo.from_workload("ratings-7", labels={"service.istio.io/canonical-name": "ratings-svc"})
    assert (bare.canonical_service, bare.canonical_revision, bare.app) == ("ratings-svc", "latest", "")
    assert NodeInfo.from_workload("worker-3").canonical_service == "worker"


def test_peer_metadata_round_trip():
    n = NodeInfo.from_workload("productpage-v1", labels={"app": "productpage", "version": "v1"})
    md = decode_peer_metadata(n.peer_metadata_header())
    labels = from_peer_metadata(md, "spiffe://cluster.local/ns/default/sa/pp")
    assert (labels.workload, labels.app, labels.version, labels.principal) == (
        "productpage-v1", "productpage", "v1", "spiffe://cluster.local/ns/default/sa/pp")
    assert decode_peer_metadata(b"not base64!") is None


def test_label_order_and_interning():
    node = NodeInfo.from_workload("productpage-v1", labels={"app": "productpage", "version": "v1"})
    tel = IstioTelemetry(Stats(), node)
    dest = from_workload_metadata("reviews-v1;default;reviews;v1;Kubernetes")
    svc = service_labels("reviews.default.svc.cluster.local", "reviews", "default")
    part = tel.peer_part("source", tel.local, dest, svc)
    assert tel.peer_part("source", tel.local, dest, svc) is part
    m = tel.http(part, "http", 200, "", "-", "unknown")
    assert tel.http(part, "http", 200, "", "-", "unknown") is m
    names = [k for k, _ in part.labels]
    assert names[:10] == ["reporter", "source_workload", "source_canonical_service", "source_canonical_revision",
                          "source_workload_namespace", "source_principal", "source_app", "source_version", "source_cluster",
                          "destination_workload"]
    assert names[10:] == ["destination_workload_namespace", "destination_principal", "destination_app",
                          "destination_version", "destination_service", "destination_service_name",
                          "destination_service_namespace", "destination_canonical_service",
                          "destination_canonical_revision", "destination_cluster"]
