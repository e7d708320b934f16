"""Envoy Node → Proxy, and binding the mTLS identity."""
from __future__ import annotations

import pytest

from isthmus.pilot.model.proxy import CaptureMode, ProxyType, WorkloadPort
from isthmus.pilot.xds.node import IdentityMismatch, NodeInvalid, bind_identity, proxy_from_node
from tests.pilot.xds.harness import make_node


def test_full_node():
    node = make_node(
        "reviews-v1-abc", "default", ip="10.0.0.7", SERVICE_ACCOUNT="bookinfo-reviews",
        LABELS={"app": "reviews", "version": "v1"}, WORKLOAD_NAME="reviews-v1", INTERCEPTION_MODE="REDIRECT",
        WORKLOAD_GROUP="reviews", OUTBOUND_PORT="16001", INBOUND_PORT=16006, CLUSTER_ID="local",
        INSTANCE_IPS="10.0.0.7,10.0.0.8",
        PORTS=[{"port": 9080, "name": "http", "protocol": "HTTP", "proxyPort": 15080}, {"port": "9090"}],
    )
    p = proxy_from_node(node)
    assert p.type is ProxyType.SIDECAR and p.namespace == "default" and p.service_account == "bookinfo-reviews"
    assert p.ip_addresses == ("10.0.0.7", "10.0.0.8") and p.name == "reviews-v1-abc.default"
    assert dict(p.labels) == {"app": "reviews", "version": "v1"} and p.workload_name == "reviews-v1"
    assert p.capture_mode is CaptureMode.IPTABLES and p.workload_group == "reviews"
    assert (p.outbound_port, p.inbound_port, p.cluster, p.version) == (16001, 16006, "local", "1.24.0")
    assert p.ports == (WorkloadPort(9080, "http", "HTTP", 15080), WorkloadPort(9090))
    assert p.metadata["ISTIO_VERSION"] == "1.24.0"


def test_defaults_router_and_explicit():
    node = make_node("ingress", "istio-system", kind="router", INTERCEPTION_MODE="NONE")
    p = proxy_from_node(node)
    assert p.is_gateway and p.capture_mode is CaptureMode.EXPLICIT
    assert (p.outbound_port, p.inbound_port, p.cluster, p.service_account) == (15001, 15006, "Kubernetes", "")
    assert p.workload_name == "ingress"


@pytest.mark.parametrize("md, fragment", [
    ({"NAMESPACE": "other"}, "disagrees with node.id"),
    ({"INTERCEPTION_MODE": "TPROXY"}, "must be REDIRECT (iptables) or NONE (explicit)"),
    ({"PORTS": [{"name": "http"}]}, "PORTS[0]: must be an object with at least `port`"),
    ({"PORTS": [{"port": 70000}]}, "PORTS[0].port: must be a port number"),
    ({"PORTS": "9080"}, "PORTS: must be a list"),
    ({"LABELS": ["a"]}, "LABELS: must be a map"),
    ({"OUTBOUND_PORT": "x"}, "OUTBOUND_PORT: must be a port number"),
    ({"SERVICE_ACCOUNT": {"a": 1}}, "SERVICE_ACCOUNT: must be a string"),
])
def test_malformed_metadata(md, fragment):
    with pytest.raises(NodeInvalid) as err:
        proxy_from_node(make_node(**md))
    assert fragment in str(err.value)


def test_identity_binding():
    p = proxy_from_node(make_node("reviews-v1", "team-a", SERVICE_ACCOUNT="reviews"))
    bound = bind_identity(p, "spiffe://cluster.local/ns/team-a/sa/reviews", "cluster.local")
    assert bound.identity == "spiffe://cluster.local/ns/team-a/sa/reviews"
    # An unclaimed service account comes from the certificate.
    p2 = proxy_from_node(make_node("reviews-v1", "team-a"))
    assert bind_identity(p2, "spiffe://cluster.local/ns/team-a/sa/reviews", "cluster.local").service_account == "reviews"
    assert bind_identity(p2, None, "cluster.local").service_account == "default"


@pytest.mark.parametrize("uri", [
    "spiffe://cluster.local/ns/team-b/sa/reviews",
    "spiffe://cluster.local/ns/team-a/sa/ratings",
    "spiffe://other.domain/ns/team-a/sa/reviews",
    "spiffe://cluster.local/ns/team-a",
])
def test_identity_mismatch_names_both(uri):
    p = proxy_from_node(make_node("reviews-v1", "team-a", SERVICE_ACCOUNT="reviews"))
    with pytest.raises(IdentityMismatch) as err:
        bind_identity(p, uri, "cluster.local")
    assert uri in str(err.value)
