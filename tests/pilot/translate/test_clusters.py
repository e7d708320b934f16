"""CDS: outbound/inbound/special clusters, DestinationRule features, auto-mTLS, and the
real-Envoy validation oracle over everything generated."""
from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf.json_format import MessageToDict

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.proxy import CaptureMode, Proxy, ProxyType, WorkloadPort
from isthmus.pilot.translate.clusters import HTTP_PROTOCOL_OPTIONS_KEY, build_clusters
from isthmus.pilot.translate.endpoints import build_endpoints
from tests.conftest import corpus_path
from tests.pilot.envoy_validate import envoy_validate, needs_envoy, static_bootstrap
from tests.pilot.fixtures import BOOKINFO_SERVICES, push_from_yaml, sidecar

C = cluster_pb2.Cluster
REVIEWS = "reviews.default.svc.cluster.local"

EXTRA_SERVICES = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc}
spec:
  hosts: [grpc.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 7070, name: grpc, protocol: GRPC}
  - {number: 8080, name: http-alt, protocol: HTTP}
  - {number: 9000, name: tcp, protocol: TCP}
  - {number: 9100, name: sniffed}
  endpoints:
  - {address: 127.0.0.51, labels: {app: grpc, version: v1, security.istio.io/tlsMode: istio}, serviceAccount: grpc, locality: us-east/a/x, weight: 3}
  - {address: 127.0.0.52, labels: {app: grpc, version: v2}, locality: us-west/b}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS_ROUND_ROBIN
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: api-1.example.com}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ["*.wild.example.com"]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 8443, name: tls, protocol: TLS}]
"""

EVERY_FEATURE_DR = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: grpc-all}
spec:
  host: grpc.default.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 250ms, maxConnectionDuration: 1h,
            tcpKeepalive: {time: 7200s, interval: 75s, probes: 9}}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 5,
             maxRetries: 3, idleTimeout: 30s, maxConcurrentStreams: 64}
    outlierDetection: {consecutive5xxErrors: 5, consecutiveGatewayErrors: 2, interval: 10s,
                       baseEjectionTime: 30s, maxEjectionPercent: 50, minHealthPercent: 25}
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 8080}
      loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 60s}
      tls: {mode: DISABLE}
    - port: {number: 9000}
      loadBalancer: {simple: PASSTHROUGH}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {maglev: {tableSize: 65537}, useSourceIp: true}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
      connectionPool: {http: {h2UpgradePolicy: UPGRADE}}
      portLevelSettings:
      - port: {number: 8080}
        outlierDetection: {consecutive5xxErrors: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin.org
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    tls: {mode: SIMPLE, caCertificates: /etc/certs/ca.pem, subjectAltNames: [httpbin.org], sni: httpbin.org}
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: MUTUAL, credentialName: httpbin-client}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: api.example.com
  trafficPolicy:
    tls: {mode: MUTUAL, clientCertificate: /etc/certs/c.pem, privateKey: /etc/certs/k.pem, caCertificates: /etc/certs/ca.pem}
"""


def _by_name(clusters) -> dict[str, cluster_pb2.Cluster]:
    return {c.name: c for c in clusters}


def _http_options(c) -> http_protocol_options_pb2.HttpProtocolOptions | None:
    if HTTP_PROTOCOL_OPTIONS_KEY not in c.typed_extension_protocol_options:
        return None
    out = http_protocol_options_pb2.HttpProtocolOptions()
    c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS_KEY].Unpack(out)
    return out


def _tls(c) -> tls_pb2.UpstreamTlsContext | None:
    if not c.HasField("transport_socket"):
        return None
    out = tls_pb2.UpstreamTlsContext()
    c.transport_socket.typed_config.Unpack(out)
    return out


def _all_features():
    return push_from_yaml(BOOKINFO_SERVICES + EXTRA_SERVICES + EVERY_FEATURE_DR)


# ---- naming, order, special clusters ----------------------------------------------------

def test_bookinfo_names_and_order():
    clusters = build_clusters(sidecar(), push_from_yaml(BOOKINFO_SERVICES))
    assert [c.name for c in clusters] == [
        "outbound|9080||details.default.svc.cluster.local",
        "outbound|3306||mysqldb.default.svc.cluster.local",
        "outbound|9080||ratings.default.svc.cluster.local",
        "outbound|9080||reviews.default.svc.cluster.local",
        "inbound|9080||",
        "PassthroughCluster",
        "BlackHoleCluster",
    ]


def test_subset_clusters_follow_dr():
    push = push_from_yaml(BOOKINFO_SERVICES + "\n---\n" + corpus_path("istio-samples/bookinfo/networking/destination-rule-all.yaml").read_text())
    names = [c.name for c in build_clusters(sidecar(), push)]
    assert names[names.index(f"outbound|9080||{REVIEWS}"):][:4] == [
        f"outbound|9080||{REVIEWS}", f"outbound|9080|v1|{REVIEWS}", f"outbound|9080|v2|{REVIEWS}", f"outbound|9080|v3|{REVIEWS}"]


def test_eds_cluster_uses_ads():
    c = _by_name(build_clusters(sidecar(), push_from_yaml(BOOKINFO_SERVICES)))[f"outbound|9080||{REVIEWS}"]
    assert c.type == C.EDS
    assert c.eds_cluster_config.service_name == c.name
    assert c.eds_cluster_config.eds_config.HasField("ads")
    assert c.connect_timeout.seconds == 10
    assert c.lb_policy == C.LEAST_REQUEST  # Istio's default
    assert c.circuit_breakers.thresholds[0].max_connections.value == 2**32 - 1


def test_connect_timeout_from_mesh():
    push = push_from_yaml(BOOKINFO_SERVICES, mesh=MeshConfig(connect_timeout_s=2.5))
    c = _by_name(build_clusters(sidecar(), push))[f"outbound|9080||{REVIEWS}"]
    assert (c.connect_timeout.seconds, c.connect_timeout.nanos) == (2, 500_000_000)


def test_passthrough_blackhole_inbound():
    by = _by_name(build_clusters(sidecar(), push_from_yaml(BOOKINFO_SERVICES)))
    pt = by["PassthroughCluster"]
    assert (pt.type, pt.lb_policy) == (C.ORIGINAL_DST, C.CLUSTER_PROVIDED)
    bh = by["BlackHoleCluster"]
    assert bh.type == C.STATIC and not bh.load_assignment.endpoints
    inbound = by["inbound|9080||"]
    assert inbound.type == C.STATIC
    sa = inbound.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (sa.address, sa.port_value) == ("127.0.0.1", 9080)
    assert not inbound.HasField("upstream_bind_config")


def test_iptables_sidecar_binds_inbound_and_has_inbound_passthrough():
    proxy = sidecar(capture=CaptureMode.IPTABLES)
    by = _by_name(build_clusters(proxy, push_from_yaml(BOOKINFO_SERVICES)))
    assert by["inbound|9080||"].upstream_bind_config.source_address.address == "127.0.0.6"
    assert by["InboundPassthroughClusterIpv4"].type == C.ORIGINAL_DST
    assert not by["PassthroughCluster"].original_dst_lb_config.use_http_header


def test_gateway_has_no_inbound_clusters():
    gw = Proxy(id="router~127.0.0.1~gw.istio-system~istio-system.svc.cluster.local", type=ProxyType.ROUTER,
               ip_addresses=("127.0.0.1",), namespace="istio-system", labels={"istio": "ingressgateway"},
               ports=(WorkloadPort(port=8080),))
    names = [c.name for c in build_clusters(gw, push_from_yaml(BOOKINFO_SERVICES))]
    assert not any(n.startswith("inbound|") for n in names)
    assert names[-2:] == ["PassthroughCluster", "BlackHoleCluster"]


# ---- resolution → discovery type ----------------------------------------------------------

def test_resolution_types():
    by = _by_name(build_clusters(sidecar(), push_from_yaml(BOOKINFO_SERVICES + EXTRA_SERVICES)))
    strict = by["outbound|443||httpbin.org"]
    assert strict.type == C.STRICT_DNS
    sa = strict.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (sa.address, sa.port_value) == ("httpbin.org", 443)
    logical = by["outbound|443||api.example.com"]
    assert logical.type == C.LOGICAL_DNS
    assert [lb.endpoint.address.socket_address.address for lb in logical.load_assignment.endpoints[0].lb_endpoints] == ["api-1.example.com"]
    orig = by["outbound|8443||*.wild.example.com"]
    assert (orig.type, orig.lb_policy) == (C.ORIGINAL_DST, C.CLUSTER_PROVIDED)
    assert not orig.transport_socket_matches


def test_protocol_options():
    by = _by_name(build_clusters(sidecar(), push_from_yaml(BOOKINFO_SERVICES + EXTRA_SERVICES)))
    assert _http_options(by["outbound|7070||grpc.default.svc.cluster.local"]).explicit_http_config.HasField("http2_protocol_options")
    assert _http_options(by["outbound|8080||grpc.default.svc.cluster.local"]) is None  # HTTP/1.1: Envoy's default
    assert _http_options(by["outbound|9100||grpc.default.svc.cluster.local"]).HasField("use_downstream_protocol_config")


# ---- DestinationRule features --------------------------------------------------------------

def test_connection_pool_and_outlier():
    c = _by_name(build_clusters(sidecar(), _all_features()))["outbound|7070||grpc.default.svc.cluster.local"]
    t = c.circuit_breakers.thresholds[0]
    assert (t.max_connections.value, t.max_pending_requests.value, t.max_requests.value, t.max_retries.value) == (100, 10, 1000, 3)
    assert (c.connect_timeout.seconds, c.connect_timeout.nanos) == (0, 250_000_000)
    ka = c.upstream_connection_options.tcp_keepalive
    assert (ka.keepalive_time.value, ka.keepalive_interval.value, ka.keepalive_probes.value) == (7200, 75, 9)
    opts = _http_options(c)
    common = opts.common_http_protocol_options
    assert (common.idle_timeout.seconds, common.max_requests_per_connection.value, common.max_connection_duration.seconds) == (30, 5, 3600)
    assert opts.explicit_http_config.http2_protocol_options.max_concurrent_streams.value == 64
    od = MessageToDict(c.outlier_detection)
    assert od == {
        "consecutive5xx": 5, "enforcingConsecutive5xx": 100, "consecutiveGatewayFailure": 2,
        "enforcingConsecutiveGatewayFailure": 100, "interval": "10s", "baseEjectionTime": "30s",
        "maxEjectionPercent": 50, "enforcingSuccessRate": 0,
    }
    assert c.common_lb_config.healthy_panic_threshold.value == 25


def test_consistent_hash_ring_and_maglev_subset_override():
    by = _by_name(build_clusters(sidecar(), _all_features()))
    top = by["outbound|7070||grpc.default.svc.cluster.local"]
    assert (top.lb_policy, top.ring_hash_lb_config.minimum_ring_size.value) == (C.RING_HASH, 2048)
    v1 = by["outbound|7070|v1|grpc.default.svc.cluster.local"]
    assert (v1.lb_policy, v1.maglev_lb_config.table_size.value) == (C.MAGLEV, 65537)
    # v1 inherits the top-level connection pool and outlier detection field by field
    assert v1.circuit_breakers.thresholds[0].max_connections.value == 100
    assert v1.outlier_detection.consecutive_5xx.value == 5


def test_port_level_replaces_top_level_wholesale():
    by = _by_name(build_clusters(sidecar(), _all_features()))
    c = by["outbound|8080||grpc.default.svc.cluster.local"]
    assert c.lb_policy == C.ROUND_ROBIN
    assert c.round_robin_lb_config.slow_start_config.slow_start_window.seconds == 60
    assert not c.HasField("outlier_detection")  # not inherited from the top level
    assert c.circuit_breakers.thresholds[0].max_connections.value == 2**32 - 1
    assert c.connect_timeout.seconds == 10
    assert not c.HasField("transport_socket") and not c.transport_socket_matches  # tls DISABLE
    passthrough = by["outbound|9000||grpc.default.svc.cluster.local"]
    assert (passthrough.type, passthrough.lb_policy) == (C.ORIGINAL_DST, C.CLUSTER_PROVIDED)
    assert not passthrough.HasField("eds_cluster_config")


def test_subset_port_level_and_h2_upgrade():
    by = _by_name(build_clusters(sidecar(), _all_features()))
    v2_http = by["outbound|8080|v2|grpc.default.svc.cluster.local"]
    # subset port-level entry replaces every subset field for port 8080 → DR port-level lb stays,
    # subset's portLevel outlier applies, subset-level RANDOM and h2 upgrade do not (port-level wins wholesale)
    assert v2_http.lb_policy == C.LEAST_REQUEST
    assert v2_http.outlier_detection.consecutive_5xx.value == 1
    assert _http_options(v2_http) is None
    v2_tcp_h = by["outbound|9100|v2|grpc.default.svc.cluster.local"]
    assert v2_tcp_h.lb_policy == C.RANDOM
    assert _http_options(v2_tcp_h).explicit_http_config.HasField("http2_protocol_options")  # h2UpgradePolicy: UPGRADE


def test_istio_mutual_from_dr():
    by = _by_name(build_clusters(sidecar(), _all_features()))
    ctx = _tls(by["outbound|7070|v1|grpc.default.svc.cluster.local"])
    assert ctx.sni == "outbound_.7070_.v1_.grpc.default.svc.cluster.local"
    sans = [m.matcher.exact for m in ctx.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names]
    assert sans == ["spiffe://cluster.local/ns/default/sa/grpc"]
    assert list(ctx.common_tls_context.alpn_protocols) == ["istio-peer-exchange", "istio", "h2"]
    assert not by["outbound|7070|v1|grpc.default.svc.cluster.local"].transport_socket_matches


def test_simple_and_mutual_tls():
    by = _by_name(build_clusters(sidecar(), _all_features()))
    simple = _tls(by["outbound|443||httpbin.org"])
    assert simple.sni == "httpbin.org"
    assert simple.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name == "file-root:/etc/certs/ca.pem"
    cred = by["outbound|80||httpbin.org"]
    ctx = _tls(cred)
    assert ctx.common_tls_context.tls_certificate_sds_secret_configs[0].name == "kubernetes://httpbin-client"
    opts = _http_options(cred).upstream_http_protocol_options
    assert opts.auto_sni and opts.auto_san_validation
    files = _tls(by["outbound|443||api.example.com"])
    assert files.common_tls_context.tls_certificate_sds_secret_configs[0].name == "file-cert:/etc/certs/c.pem~/etc/certs/k.pem"


# ---- auto-mTLS ------------------------------------------------------------------------------

def test_auto_mtls_transport_socket_matches():
    c = _by_name(build_clusters(sidecar(), push_from_yaml(BOOKINFO_SERVICES)))[f"outbound|9080||{REVIEWS}"]
    assert not c.HasField("transport_socket")
    istio, plain = c.transport_socket_matches
    assert (istio.name, MessageToDict(istio.match)) == ("tlsMode-istio", {"tlsMode": "istio"})
    ctx = tls_pb2.UpstreamTlsContext()
    istio.transport_socket.typed_config.Unpack(ctx)
    assert ctx.sni == f"outbound_.9080_._.{REVIEWS}"
    assert [m.matcher.exact for m in ctx.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names] == [
        "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"]
    assert (plain.name, MessageToDict(plain.match), plain.transport_socket.name) == (
        "tlsMode-disabled", {}, "envoy.transport_sockets.raw_buffer")


def test_auto_mtls_off_for_external_disabled_mesh_and_peer_auth_disable():
    by = _by_name(build_clusters(sidecar(), push_from_yaml(BOOKINFO_SERVICES + EXTRA_SERVICES)))
    assert not by["outbound|80||httpbin.org"].transport_socket_matches
    off = push_from_yaml(BOOKINFO_SERVICES, mesh=MeshConfig(enable_auto_mtls=False))
    assert not _by_name(build_clusters(sidecar(), off))[f"outbound|9080||{REVIEWS}"].transport_socket_matches
    pa = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: DISABLE}}
"""
    disabled = push_from_yaml(BOOKINFO_SERVICES + pa)
    assert not _by_name(build_clusters(sidecar(), disabled))[f"outbound|9080||{REVIEWS}"].transport_socket_matches


def test_dr_disable_turns_off_auto_mtls():
    dr = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews, trafficPolicy: {tls: {mode: DISABLE}}}
"""
    c = _by_name(build_clusters(sidecar(), push_from_yaml(BOOKINFO_SERVICES + dr)))[f"outbound|9080||{REVIEWS}"]
    assert not c.transport_socket_matches and not c.HasField("transport_socket")


# ---- Sidecar scoping, determinism ---------------------------------------------------------------

def test_sidecar_resource_scopes_outbound_clusters():
    sc = """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: ["./reviews.default.svc.cluster.local"]
"""
    names = [c.name for c in build_clusters(sidecar(), push_from_yaml(BOOKINFO_SERVICES + sc))]
    assert [n for n in names if n.startswith("outbound|")] == [f"outbound|9080||{REVIEWS}"]


def test_deterministic_bytes():
    a = [c.SerializeToString(deterministic=True) for c in build_clusters(sidecar(), _all_features())]
    b = [c.SerializeToString(deterministic=True) for c in build_clusters(sidecar(), _all_features())]
    assert a == b


# ---- the oracle: real Envoy accepts everything -----------------------------------------------

def _validate(proxy, push, tmp_path):
    clusters = build_clusters(proxy, push)
    eds = {c.name for c in clusters if c.type == C.EDS}
    assignments = {a.cluster_name: a for a in build_endpoints(proxy, push, sorted(eds))}
    static = []
    for c in clusters:
        s = C()
        s.CopyFrom(c)
        if c.type == C.EDS:  # no ADS server here: inline the EDS answer
            s.type = C.STATIC
            s.ClearField("eds_cluster_config")
            s.load_assignment.CopyFrom(assignments[c.name])
        static.append(s)
    boot = static_bootstrap(clusters=static, sds_socket=str(tmp_path / "sds.sock"))
    boot["node"]["id"] = proxy.id
    # credentialName secrets come over ADS: give the bootstrap an ADS source, as a real one has.
    xds = {
        "name": "xds-grpc", "type": "STATIC",
        "typed_extension_protocol_options": boot["static_resources"]["clusters"][0]["typed_extension_protocol_options"],
        "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"pipe": {"path": str(tmp_path / "xds.sock")}}}}]}]},
    }
    boot["static_resources"]["clusters"].append(xds)
    boot["dynamic_resources"] = {"ads_config": {
        "api_type": "GRPC", "transport_api_version": "V3",
        "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]}}
    result = envoy_validate(boot, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return clusters


@pytest.mark.envoy
@needs_envoy
def test_envoy_accepts_bookinfo_destination_rules(tmp_path):
    for name in ("destination-rule-all.yaml", "destination-rule-all-mtls.yaml"):
        dr = corpus_path("istio-samples/bookinfo/networking", name).read_text()
        clusters = _validate(sidecar(), push_from_yaml(BOOKINFO_SERVICES + "\n---\n" + dr), tmp_path)
        assert f"outbound|9080|v3|{REVIEWS}" in {c.name for c in clusters}


@pytest.mark.envoy
@needs_envoy
def test_envoy_accepts_every_feature(tmp_path):
    clusters = _validate(sidecar(), _all_features(), tmp_path)
    assert len(clusters) > 20
    _validate(sidecar(capture=CaptureMode.IPTABLES), _all_features(), tmp_path)



# ---- policy.py: Istio's merge rules and the route hash policy ------------------------------

def _dr(yaml_spec: str):
    from isthmus.shared.config.types import DestinationRuleSpec
    import yaml
    return DestinationRuleSpec.from_dict(yaml.safe_load(yaml_spec))


MERGE_DR = """
host: r
trafficPolicy:
  connectionPool: {tcp: {maxConnections: 1}}
  outlierDetection: {consecutive5xxErrors: 7}
  tls: {mode: ISTIO_MUTUAL}
  portLevelSettings:
  - port: {number: 80}
    loadBalancer: {simple: RANDOM}
subsets:
- name: plain
  labels: {v: plain}
- name: lb
  labels: {v: lb}
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
- name: pl
  labels: {v: pl}
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 9}}
    portLevelSettings:
    - port: {number: 81}
      outlierDetection: {consecutive5xxErrors: 1}
"""


def test_merge_top_level_and_port_level():
    from isthmus.pilot.translate.policy import effective_traffic_policy
    dr = _dr(MERGE_DR)
    assert effective_traffic_policy(None, 80) is None
    top = effective_traffic_policy(dr, 443)
    assert (top.connection_pool.tcp.max_connections, top.tls.mode, top.port_level_settings) == (1, "ISTIO_MUTUAL", ())
    port80 = effective_traffic_policy(dr, 80)  # port-level replaces the whole policy: nothing inherited
    assert (port80.load_balancer.simple, port80.connection_pool, port80.outlier_detection, port80.tls) == ("RANDOM", None, None, None)


def test_merge_subset_over_port_level():
    from isthmus.pilot.translate.policy import effective_traffic_policy
    dr = _dr(MERGE_DR)
    assert effective_traffic_policy(dr, 443, "plain") == effective_traffic_policy(dr, 443)
    assert effective_traffic_policy(dr, 443, "missing") == effective_traffic_policy(dr, 443)
    lb443 = effective_traffic_policy(dr, 443, "lb")  # subset field overrides, the rest inherited
    assert (lb443.load_balancer.simple, lb443.connection_pool.tcp.max_connections, lb443.tls.mode) == ("ROUND_ROBIN", 1, "ISTIO_MUTUAL")
    lb80 = effective_traffic_policy(dr, 80, "lb")  # over the DR's port-80 entry
    assert (lb80.load_balancer.simple, lb80.connection_pool) == ("ROUND_ROBIN", None)
    pl443 = effective_traffic_policy(dr, 443, "pl")
    assert (pl443.connection_pool.tcp.max_connections, pl443.outlier_detection.consecutive5xx_errors) == (9, 7)
    pl81 = effective_traffic_policy(dr, 81, "pl")  # subset port-level entry replaces every subset field
    assert (pl81.outlier_detection.consecutive5xx_errors, pl81.connection_pool, pl81.tls, pl81.load_balancer) == (1, None, None, None)


def test_consistent_hash_policy_keys():
    from isthmus.pilot.translate.policy import consistent_hash_policy, effective_traffic_policy
    def hp(ch: str):
        policy = effective_traffic_policy(_dr(f"host: r\ntrafficPolicy: {{loadBalancer: {{consistentHash: {ch}}}}}"), 80)
        return [MessageToDict(h) for h in consistent_hash_policy(policy)]
    assert hp("{httpHeaderName: x-user}") == [{"header": {"headerName": "x-user"}}]
    assert hp("{httpCookie: {name: sess, ttl: 60s, path: /, attributes: [{name: SameSite, value: Strict}]}}") == [
        {"cookie": {"name": "sess", "ttl": "60s", "path": "/", "attributes": [{"name": "SameSite", "value": "Strict"}]}}]
    assert hp("{useSourceIp: true}") == [{"connectionProperties": {"sourceIp": True}}]
    assert hp("{httpQueryParameterName: user}") == [{"queryParameter": {"name": "user"}}]
    assert consistent_hash_policy(None) == []
    assert consistent_hash_policy(effective_traffic_policy(_dr("host: r\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}"), 80)) == []


def test_hash_policy_for_destination_uses_subset():
    from isthmus.pilot.translate.policy import hash_policy_for_destination
    push = _all_features()
    host = "grpc.default.svc.cluster.local"
    assert [MessageToDict(h) for h in hash_policy_for_destination(push, "default", host, 7070)] == [{"header": {"headerName": "x-user"}}]
    assert [MessageToDict(h) for h in hash_policy_for_destination(push, "default", host, 7070, "v1")] == [{"connectionProperties": {"sourceIp": True}}]
    assert hash_policy_for_destination(push, "default", REVIEWS, 9080) == []


def test_default_ring_size_and_least_request_warmup():
    from isthmus.pilot.translate.policy import apply_load_balancer, effective_traffic_policy
    c = C(name="x", type=C.EDS)
    apply_load_balancer(c, effective_traffic_policy(_dr("host: r\ntrafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: h}}}"), 80))
    assert (c.lb_policy, c.ring_hash_lb_config.minimum_ring_size.value) == (C.RING_HASH, 1024)
    c = C(name="x", type=C.EDS)
    apply_load_balancer(c, effective_traffic_policy(_dr("host: r\ntrafficPolicy: {loadBalancer: {simple: LEAST_REQUEST, warmupDurationSecs: 15s}}"), 80))
    assert (c.lb_policy, c.least_request_lb_config.slow_start_config.slow_start_window.seconds) == (C.LEAST_REQUEST, 15)
