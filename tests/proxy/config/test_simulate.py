"""Behaviour as traffic, over the compiled configuration the proxy runs: pilot's resources
for Bookinfo (plus corpus VirtualServices) → Snapshot → a virtual request → where it lands."""
from __future__ import annotations

import pytest

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.proxy import CaptureMode, WorkloadPort
from isthmus.proxy.config.simulate import NO_FILTER_CHAIN, VirtualRequest, simulate
from tests.pilot.fixtures import sidecar
from tests.pilot.translate.test_listeners import STRICT_NS
from tests.pilot.translate.test_routes import FEATURE_YAML
from tests.proxy.config.helpers import corpus_text, pilot_snapshot

IPTABLES = sidecar(capture=CaptureMode.IPTABLES)
JASON = {"end-user": "jason"}


def svc(name: str, subset: str = "", port: int = 9080) -> str:
    return f"outbound|{port}|{subset}|{name}.default.svc.cluster.local"


def send(snap, capture: CaptureMode, authority: str, path: str = "/", headers=None, **kw):
    """The app's request as each capture mode delivers it to the proxy's outbound side."""
    if capture is CaptureMode.IPTABLES:
        port = int(authority.rpartition(":")[2]) if ":" in authority else 80
        req = VirtualRequest(authority=authority, path=path, headers=headers or {}, dest_port=port, dest_ip="10.96.0.1", **kw)
    else:
        req = VirtualRequest(authority=authority, path=path, headers=headers or {}, **kw)
    return simulate(snap, 15001, req)


# (corpus VirtualService, authority, request headers, expected [(cluster, weight)], fault kind)
CASES = [
    ("virtual-service-all-v1.yaml", "reviews:9080", JASON, [(svc("reviews", "v1"), 1)], None),
    ("virtual-service-all-v1.yaml", "ratings.default.svc.cluster.local:9080", {}, [(svc("ratings", "v1"), 1)], None),
    ("virtual-service-details-v2.yaml", "details:9080", {}, [(svc("details", "v2"), 1)], None),
    ("virtual-service-ratings-test-abort.yaml", "ratings:9080", JASON, [(svc("ratings", "v1"), 1)], "abort"),
    ("virtual-service-ratings-test-abort.yaml", "ratings:9080", {}, [(svc("ratings", "v1"), 1)], None),
    ("virtual-service-ratings-test-delay.yaml", "ratings:9080", JASON, [(svc("ratings", "v1"), 1)], "delay"),
    ("virtual-service-reviews-50-v3.yaml", "reviews:9080", {}, [(svc("reviews", "v1"), 50), (svc("reviews", "v3"), 50)], None),
    ("virtual-service-reviews-80-20.yaml", "reviews:9080", {}, [(svc("reviews", "v1"), 80), (svc("reviews", "v2"), 20)], None),
    ("virtual-service-reviews-jason-v2-v3.yaml", "reviews:9080", JASON, [(svc("reviews", "v2"), 1)], None),
    ("virtual-service-reviews-jason-v2-v3.yaml", "reviews:9080", {}, [(svc("reviews", "v3"), 1)], None),
    ("virtual-service-reviews-test-v2.yaml", "reviews:9080", {"end-user": "Jason"}, [(svc("reviews", "v1"), 1)], None),
    ("virtual-service-reviews-v3.yaml", "reviews.default.svc.cluster.local:9080", {}, [(svc("reviews", "v3"), 1)], None),
    ("fault-injection-details-v1.yaml", "details:9080", {}, [(svc("details", "v1"), 1)], "abort"),
]


@pytest.mark.parametrize("capture", [CaptureMode.EXPLICIT, CaptureMode.IPTABLES])
@pytest.mark.parametrize("vs, authority, headers, expected, fault", CASES)
def test_bookinfo_corpus(capture, vs, authority, headers, expected, fault):
    snap = pilot_snapshot(corpus_text("destination-rule-all.yaml", vs), proxy=sidecar(capture=capture))
    assert snap.missing().empty
    out = send(snap, capture, authority, headers=headers)
    assert out.error == ""
    assert list(out.clusters) == expected
    assert out.cluster in dict(expected) and out.cluster_config is not None  # (details v2 has no endpoints: 503 UH at runtime)
    assert out.listener.name == ("0.0.0.0_9080" if capture is CaptureMode.IPTABLES else "http_proxy")
    cfg = out.route.filter_config("envoy.filters.http.fault")
    assert (None if cfg is None else ("abort" if cfg.abort else "delay")) == fault


def test_jason_lands_on_reviews_v2_endpoint_over_mtls():
    snap = pilot_snapshot(corpus_text("destination-rule-all.yaml", "virtual-service-reviews-jason-v2-v3.yaml"))
    out = simulate(snap, 15001, VirtualRequest(authority="reviews:9080", headers=JASON))
    assert out.cluster == svc("reviews", "v2")
    assert [str(e.address) for e in out.endpoints] == ["127.0.0.12:19080"]
    assert out.cluster_config.transport_for(out.endpoints[0]).sni == f"outbound_.9080_.v2_.{svc('reviews', 'v2').split('|')[3]}"
    assert out.virtual_host.name == "reviews.default.svc.cluster.local:9080"


def test_weighted_split_follows_the_random_value():
    snap = pilot_snapshot(corpus_text("destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml"))
    picks = [send(snap, CaptureMode.EXPLICIT, "reviews:9080", random_value=i).cluster for i in range(100)]
    assert picks.count(svc("reviews", "v1")) == 80 and picks.count(svc("reviews", "v2")) == 20


def test_unknown_hosts_passthrough_blocked_or_not_routed():
    allow = pilot_snapshot(proxy=IPTABLES)
    out = send(allow, CaptureMode.IPTABLES, "example.com:9080")
    assert out.virtual_host.name == "allow_any" and out.cluster == "PassthroughCluster"
    blocked = pilot_snapshot(proxy=IPTABLES, mesh=MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))
    out = send(blocked, CaptureMode.IPTABLES, "example.com:9080")
    assert out.direct_response.status == 502 and out.cluster == ""
    explicit = send(pilot_snapshot(), CaptureMode.EXPLICIT, "10.1.1.1:9080")
    assert explicit.virtual_host.name == "allow_any" and explicit.cluster == "PassthroughCluster"
    nothing = simulate(allow, 15001, VirtualRequest(dest_port=4444, dest_ip="10.1.1.1"))
    assert nothing.listener.name == "virtualOutbound" and nothing.cluster == "PassthroughCluster"


def test_tcp_service_through_its_port_listener():
    snap = pilot_snapshot(proxy=IPTABLES)
    out = simulate(snap, 15001, VirtualRequest(dest_port=3306, dest_ip="10.96.0.9"))
    assert out.listener.name == "0.0.0.0_3306" and out.filter_chain.tcp is not None
    assert out.cluster == "outbound|3306||mysqldb.default.svc.cluster.local"
    assert [str(e.address) for e in out.endpoints] == ["127.0.0.41:3306"]


def test_inbound_permissive_strict_and_iptables():
    snap = pilot_snapshot()
    mtls = simulate(snap, 15080, VirtualRequest(authority="productpage:9080", tls=True, alpn=("istio-peer-exchange", "istio")))
    assert mtls.filter_chain.name == "inbound|9080||-mtls" and mtls.cluster == "inbound|9080||"
    assert [str(e.address) for e in mtls.endpoints] == ["127.0.0.1:9080"]
    plain = simulate(snap, 15080, VirtualRequest(authority="productpage:9080"))
    assert plain.filter_chain.name == "inbound|9080||-plaintext" and plain.cluster == "inbound|9080||"
    strict = pilot_snapshot(STRICT_NS)
    assert simulate(strict, 15080, VirtualRequest(authority="productpage:9080")).error == NO_FILTER_CHAIN
    assert simulate(strict, 15080, VirtualRequest(tls=True)).filter_chain.tls.require_client_certificate
    captured = pilot_snapshot(proxy=IPTABLES)
    out = simulate(captured, 15006, VirtualRequest(authority="productpage:9080", tls=True, dest_port=15080, dest_ip="10.0.0.5"))
    assert out.listener.name == "virtualInbound" and out.cluster == "inbound|9080||"
    other = simulate(captured, 15006, VirtualRequest(dest_port=7777, dest_ip="10.0.0.5"))
    assert other.cluster == "InboundPassthroughClusterIpv4"


def test_inbound_port_shared_with_an_outbound_listener():
    proxy = sidecar(capture=CaptureMode.IPTABLES, ports=(WorkloadPort(port=9080, name="http", protocol="HTTP"),))
    out = simulate(pilot_snapshot(proxy=proxy), 15006, VirtualRequest(authority="productpage:9080", dest_port=9080, dest_ip="10.0.0.5"))
    assert out.listener.name == "virtualInbound" and out.cluster == "inbound|9080||"


def test_feature_virtual_service_behaviours():
    snap = pilot_snapshot(FEATURE_YAML, route_names=("8000",), proxy=IPTABLES)
    table = snap.routes["8000"]

    def go(path, headers=None, method="GET", random_value=0):
        path_only, _, query = path.partition("?")
        h = {k.lower(): v for k, v in (headers or {}).items()}
        return table.match("httpbin:8000", path_only, h.get, method, query, random_value=random_value)

    full = {"x-a": "1", "x-b": "pq", "x-c": "v7", "x-d": ""}
    vh, route = go("/any?q=yes", full, method="POST")
    assert route.name == "headers"
    assert [c.name for c in route.action.weighted_clusters.clusters] == ["outbound|8000|v1|httpbin.default.svc.cluster.local",
                                                                        "outbound|8000|v2|httpbin.default.svc.cluster.local"]
    assert route.action.timeout == 3.0 and route.action.retry_policy.num_retries == 3
    assert route.action.retry_policy.retriable_status_codes == {503} and route.action.retry_policy.retry_priority_update_frequency == 2
    assert go("/any?q=yes", {**full, "x-e": "no"}, method="POST")[1].name == "catch-all"  # withoutHeaders
    assert go("/any?q=yes", full, method="GET")[1].name == "catch-all"
    assert go("/STATUS")[1].name == "exact-rewrite.status" and go("/STATUS")[1].rewrite_path("/STATUS") == "/get"
    assert go("/STATUS")[1].action.host_rewrite_literal == "httpbin.org"
    assert go("/old/x")[1].action.response_code == 302
    assert go("/teapot/pot")[1].action.body == b"I'm a teapot"
    assert go("/rr/a/b")[1].rewrite_path("/rr/a/b") == "/a/b"
    fault = go("/fault")[1]
    assert fault.filter_config("envoy.filters.http.fault").delay.fixed_delay == 2.0 and fault.action.retry_policy is None
    cors = go("/cors")[1].filter_config("envoy.filters.http.cors")
    assert cors.allow_methods == "GET,POST" and cors.allow_credentials and cors.allow_origins[1].matches("https://x.b.example")
    mirrors = go("/mirror")[1].action.mirror_policies
    assert [(m.cluster.split("|")[3].split(".")[0], m.fraction.percent) for m in mirrors] == [("httpbin", 25.0), ("details", 5.0), ("ratings", 100.0)]
    assert go("/src")[1].name == "source"  # sourceLabels app=productpage match this sidecar
