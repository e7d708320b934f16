"""EDS: ClusterLoadAssignments per cluster name, subsets, metadata, localities."""
from __future__ import annotations

from envoy.config.core.v3 import health_check_pb2
from google.protobuf.json_format import MessageToDict

from isthmus.pilot.model.service import Endpoint
from isthmus.pilot.translate.endpoints import build_endpoints, load_assignment, parse_locality
from tests.pilot.fixtures import BOOKINFO_SERVICES, push_from_yaml, sidecar

REVIEWS_DR = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"


def _addresses(cla) -> list[str]:
    return [lb.endpoint.address.socket_address.address for group in cla.endpoints for lb in group.lb_endpoints]


def test_all_endpoints_of_service_port():
    push = push_from_yaml(BOOKINFO_SERVICES)
    (cla,) = build_endpoints(sidecar(), push, [REVIEWS])
    assert cla.cluster_name == REVIEWS
    assert _addresses(cla) == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    ports = {lb.endpoint.address.socket_address.port_value for g in cla.endpoints for lb in g.lb_endpoints}
    assert ports == {19080}  # the workload's named port, not the service port


def test_subset_filters_by_dr_labels():
    push = push_from_yaml(BOOKINFO_SERVICES + REVIEWS_DR)
    v1, v2 = build_endpoints(sidecar(), push, [
        "outbound|9080|v2|reviews.default.svc.cluster.local", "outbound|9080|v1|reviews.default.svc.cluster.local"])
    assert (v1.cluster_name.split("|")[2], _addresses(v1)) == ("v1", ["127.0.0.11"])
    assert (v2.cluster_name.split("|")[2], _addresses(v2)) == ("v2", ["127.0.0.12"])


def test_unknown_names_get_empty_assignments():
    push = push_from_yaml(BOOKINFO_SERVICES + REVIEWS_DR)
    names = ["nonsense", "outbound|9080|v9|reviews.default.svc.cluster.local",
             "outbound|1234||reviews.default.svc.cluster.local", "outbound|9080||nope.default.svc.cluster.local",
             "inbound|9080||"]
    out = build_endpoints(sidecar(), push, names)
    assert sorted(c.cluster_name for c in out) == sorted(names)
    assert all(len(c.endpoints) == 0 for c in out)


def test_metadata_tls_mode_and_workload():
    push = push_from_yaml(BOOKINFO_SERVICES)
    (cla,) = build_endpoints(sidecar(), push, ["outbound|9080||reviews.default.svc.cluster.local"])
    md = MessageToDict(cla.endpoints[0].lb_endpoints[0].metadata)["filterMetadata"]
    assert md["envoy.transport_socket_match"] == {"tlsMode": "istio"}
    assert md["istio"] == {"workload": "reviews-v1;default;reviews;v1;Kubernetes"}
    # details has no tlsMode label: no transport socket match metadata (plaintext under auto-mTLS)
    (details,) = build_endpoints(sidecar(), push, ["outbound|9080||details.default.svc.cluster.local"])
    md = MessageToDict(details.endpoints[0].lb_endpoints[0].metadata)["filterMetadata"]
    assert "envoy.transport_socket_match" not in md


def test_localities_weights_and_health():
    eps = [
        Endpoint("h", 80, "10.0.0.2", 80, locality="us-east/a/x", weight=3),
        Endpoint("h", 80, "10.0.0.1", 80, locality="us-east/a/x", weight=1, healthy=False),
        Endpoint("h", 80, "10.0.0.3", 80, locality="eu-west/b"),
        Endpoint("h", 80, "unix:///tmp/app.sock", 0),
    ]
    cla = load_assignment("c", eps)
    groups = [(g.locality.region, g.locality.zone, g.locality.sub_zone, g.load_balancing_weight.value) for g in cla.endpoints]
    assert groups == [("", "", "", 1), ("eu-west", "b", "", 1), ("us-east", "a", "x", 4)]
    east = cla.endpoints[2].lb_endpoints
    assert [lb.endpoint.address.socket_address.address for lb in east] == ["10.0.0.1", "10.0.0.2"]
    assert [lb.load_balancing_weight.value for lb in east] == [1, 3]
    assert [lb.health_status for lb in east] == [health_check_pb2.UNHEALTHY, health_check_pb2.HEALTHY]
    assert cla.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path == "/tmp/app.sock"


def test_parse_locality():
    loc = parse_locality("r/z/s")
    assert (loc.region, loc.zone, loc.sub_zone) == ("r", "z", "s")
    assert parse_locality("").region == ""


def test_deterministic_bytes():
    push = push_from_yaml(BOOKINFO_SERVICES + REVIEWS_DR)
    names = [REVIEWS, "outbound|9080|v1|reviews.default.svc.cluster.local"]
    a = [c.SerializeToString(deterministic=True) for c in build_endpoints(sidecar(), push, names)]
    b = [c.SerializeToString(deterministic=True) for c in build_endpoints(sidecar(), push, list(reversed(names)))]
    assert a == b
