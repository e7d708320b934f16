"""Clusters, endpoints and secrets: pilot's every-feature DestinationRule compiled into
plain numbers, auto-mTLS transport socket matches, discovery rules Envoy enforces."""
from __future__ import annotations

import pytest

from isthmus.pilot.model.proxy import CaptureMode
from isthmus.proxy.config.clusters import compile_cluster
from isthmus.proxy.config.endpoints import compile_load_assignment
from isthmus.proxy.config.errors import Invalid, Unsupported
from isthmus.proxy.config.secrets import compile_secret
from tests.pilot.fixtures import sidecar
from tests.pilot.translate.test_clusters import EVERY_FEATURE_DR, EXTRA_SERVICES
from tests.proxy.config.helpers import cluster, parse, pilot_snapshot, sds_secrets

GRPC = "grpc.default.svc.cluster.local"


@pytest.fixture(scope="module")
def features():
    return pilot_snapshot(EXTRA_SERVICES + EVERY_FEATURE_DR, proxy=sidecar(capture=CaptureMode.IPTABLES))


def test_every_feature_destination_rule(features):
    c = features.clusters[f"outbound|7070||{GRPC}"]
    assert c.discovery_type == "EDS" and c.eds_service_name == c.name and c.eds_source.kind == "ads"
    assert c.lb.policy == "ring_hash" and c.lb.minimum_ring_size == 2048 and c.lb.healthy_panic_threshold == 25.0
    assert c.connect_timeout == 0.25
    t = c.circuit_breakers.default
    assert (t.max_connections, t.max_pending_requests, t.max_requests, t.max_retries) == (100, 10, 1000, 3)
    od = c.outlier_detection
    assert (od.consecutive_5xx, od.consecutive_gateway_failure, od.interval, od.base_ejection_time, od.max_ejection_percent) == (5, 2, 10.0, 30.0, 50)
    assert od.enforcing_consecutive_5xx == 100 and od.enforcing_consecutive_gateway_failure == 100 and od.enforcing_success_rate == 0
    assert od.success_rate_stdev_factor == 1900  # Envoy's default for an unset field
    assert c.http.protocol == "http2" and c.http.idle_timeout == 30.0 and c.http.max_requests_per_connection == 5
    assert c.http.max_connection_duration == 3600.0 and c.http.max_concurrent_streams == 64
    assert (c.tcp_keepalive.probes, c.tcp_keepalive.time, c.tcp_keepalive.interval) == (9, 7200, 75)
    assert c.tls.sni == f"outbound_.7070_._.{GRPC}" and c.tls.common.alpn == ("istio-peer-exchange", "istio", "h2")
    maglev = features.clusters[f"outbound|7070|v1|{GRPC}"]
    assert maglev.lb.policy == "maglev" and maglev.lb.maglev_table_size == 65537
    rr = features.clusters[f"outbound|8080||{GRPC}"]
    assert rr.lb.policy == "round_robin" and rr.lb.slow_start.window == 60.0 and rr.tls is None
    passthrough_port = features.clusters[f"outbound|9000||{GRPC}"]
    assert passthrough_port.discovery_type == "ORIGINAL_DST" and passthrough_port.lb.policy == "cluster_provided"


def test_dns_simple_and_mutual_tls(features):
    strict = features.clusters["outbound|443||httpbin.org"]
    assert strict.discovery_type == "STRICT_DNS" and strict.dns_lookup_family == "v4_only"
    assert str(strict.load_assignment.endpoints[0].address) == "httpbin.org:443"
    assert strict.tls.sni == "httpbin.org" and strict.tls.common.validation_sds.name == "file-root:/etc/certs/ca.pem"
    assert strict.tls.common.validation.san_matchers[0].san_type == "dns"
    cred = features.clusters["outbound|80||httpbin.org"]
    assert cred.tls.common.certificate_sds[0].name == "kubernetes://httpbin-client"
    assert cred.tls.common.certificate_sds[0].source.kind == "ads"
    assert cred.http.auto_sni and cred.http.auto_san_validation
    logical = features.clusters["outbound|443||api.example.com"]
    assert logical.discovery_type == "LOGICAL_DNS" and len(logical.load_assignment.endpoints) == 1
    refs = features.references().secrets
    assert refs["kubernetes://httpbin-client"].kind == "ads" and refs["default"].cluster == "sds-grpc"


def test_auto_mtls_transport_socket_matches_follow_endpoint_metadata():
    snap = pilot_snapshot()
    c = snap.clusters["outbound|9080||reviews.default.svc.cluster.local"]
    assert [m.name for m in c.transport_socket_matches] == ["tlsMode-istio", "tlsMode-disabled"]
    eps = snap.endpoints_for(c).endpoints
    assert {e.transport_socket_match.get("tlsMode") for e in eps} == {"istio"}
    tls = c.transport_for(eps[0])
    assert tls.sni == "outbound_.9080_._.reviews.default.svc.cluster.local"
    assert tls.common.validation.san_matchers[0].match.value == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
    details = snap.clusters["outbound|9080||details.default.svc.cluster.local"]
    plain = snap.endpoints_for(details).endpoints[0]
    assert dict(plain.transport_socket_match) == {} and details.transport_for(plain) is None
    assert plain.workload.split(";")[1] == "default"


def test_special_clusters():
    snap = pilot_snapshot(proxy=sidecar(capture=CaptureMode.IPTABLES))
    passthrough = snap.clusters["PassthroughCluster"]
    assert passthrough.discovery_type == "ORIGINAL_DST" and passthrough.http.protocol == "downstream"
    assert not passthrough.original_dst.use_http_header  # iptables: the socket knows the destination
    explicit = pilot_snapshot().clusters["PassthroughCluster"]
    assert explicit.original_dst.use_http_header and explicit.original_dst.http_header_name == "x-envoy-original-dst-host"
    inbound = snap.clusters["inbound|9080||"]
    assert inbound.discovery_type == "STATIC" and inbound.source_address == "127.0.0.6"
    assert str(inbound.load_assignment.endpoints[0].address) == "127.0.0.1:9080"
    assert snap.clusters["BlackHoleCluster"].load_assignment is None


@pytest.mark.parametrize("spec, path, kind", [
    ({"type": "ORIGINAL_DST", "lb_policy": "ROUND_ROBIN"}, "lb_policy", Invalid),
    ({"type": "STATIC", "lb_policy": "CLUSTER_PROVIDED"}, "lb_policy", Invalid),
    ({"type": "EDS"}, "eds_cluster_config", Invalid),
    ({"type": "STATIC", "lb_policy": "MAGLEV", "maglev_lb_config": {"table_size": 100}}, "maglev_lb_config.table_size", Invalid),
    ({"type": "STATIC", "load_assignment": {"cluster_name": "c", "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": "example.com", "port_value": 80}}}}]}]}}, "load_assignment", Invalid),
    ({"type": "STATIC", "lb_subset_config": {"fallback_policy": "ANY_ENDPOINT"}}, "lb_subset_config", Unsupported),
    ({"type": "STATIC", "typed_extension_protocol_options": {"envoy.filters.network.thrift_proxy": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"}}},
     'typed_extension_protocol_options["envoy.filters.network.thrift_proxy"]', Unsupported),
    ({"type": "STATIC", "outlier_detection": {"max_ejection_percent": 150}}, "outlier_detection.max_ejection_percent", Invalid),
])
def test_cluster_rules(spec, path, kind):
    with pytest.raises(kind) as e:
        compile_cluster(cluster(spec))
    assert e.value.field_path == path


def test_circuit_breaker_priorities_and_retry_budget():
    c = compile_cluster(cluster({"type": "STATIC", "circuit_breakers": {"thresholds": [
        {"max_connections": 7}, {"priority": "HIGH", "max_requests": 9, "retry_budget": {"budget_percent": {"value": 25}}}],
        "per_host_thresholds": [{"max_connections": 2}]}}))
    cb = c.circuit_breakers
    assert cb.for_priority("default").max_connections == 7 and cb.default.retry_budget is None
    assert cb.for_priority("high").max_requests == 9 and cb.high.retry_budget.budget_percent == 25.0
    assert cb.high.retry_budget.min_retry_concurrency == 3 and cb.per_host_max_connections == 2


def test_defaults_of_a_bare_cluster():
    c = compile_cluster(cluster({"type": "STATIC", "lb_policy": "LEAST_REQUEST"}))
    assert c.connect_timeout == 1.0 and c.lb.policy == "least_request" and c.lb.choice_count == 2
    assert c.circuit_breakers.default.max_connections == 1024 and c.circuit_breakers.high.max_retries == 3
    assert c.http.protocol == "http1" and c.http.idle_timeout == 3600.0 and c.outlier_detection is None
    assert c.lb.healthy_panic_threshold == 50.0


def test_endpoints_localities_weights_health():
    from envoy.config.endpoint.v3 import endpoint_pb2

    cla = parse(endpoint_pb2.ClusterLoadAssignment, {"cluster_name": "x", "policy": {"overprovisioning_factor": 200}, "endpoints": [
        {"locality": {"region": "us-east", "zone": "a"}, "load_balancing_weight": 3, "priority": 1, "lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}, "hostname": "h1"},
             "health_status": "DRAINING", "load_balancing_weight": 5},
            {"endpoint": {"address": {"pipe": {"path": "/tmp/s"}}}}]}]})
    e = compile_load_assignment(cla)
    loc = e.localities[0]
    assert (loc.region, loc.zone, loc.priority, loc.weight) == ("us-east", "a", 1, 3) and e.overprovisioning_factor == 200
    first, second = e.endpoints
    assert (first.weight, first.health, first.hostname, first.healthy) == (5, "draining", "h1", False)
    assert second.address.pipe == "/tmp/s" and second.healthy and e.healthy() == (second,)


def test_secrets():
    secrets = {n: compile_secret(s) for n, s in sds_secrets().items()}
    assert secrets["default"].tls_certificate.chain.inline == b"cert" and secrets["default"].tls_certificate.key.inline == b"key"
    assert secrets["ROOTCA"].validation_context.trusted_ca.inline == b"ca"
    from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

    with pytest.raises(Unsupported) as e:
        compile_secret(parse(secret_pb2.Secret, {"name": "g", "generic_secret": {"secret": {"inline_string": "x"}}}))
    assert e.value.field_path == "generic_secret"


def test_outlier_detection_defaults_follow_envoy():
    od = compile_cluster(cluster({"type": "STATIC", "outlier_detection": {"base_ejection_time": "600s"}})).outlier_detection
    assert od.max_ejection_time == 600.0 and od.consecutive_5xx == 5 and od.enforcing_consecutive_gateway_failure == 0
    with pytest.raises(Invalid) as e:
        compile_cluster(cluster({"type": "STATIC", "outlier_detection": {"base_ejection_time": "60s", "max_ejection_time": "30s"}}))
    assert e.value.field_path == "outlier_detection.max_ejection_time"
