"""LDS for sidecars: capture modes, PeerAuthentication TLS, fallbacks; real Envoy validates."""
from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf.json_format import MessageToDict

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.peer_authn import MtlsMode, effective_mode
from isthmus.pilot.model.proxy import CaptureMode, WorkloadPort
from isthmus.pilot.translate.listeners import build_listeners
from tests.pilot.envoy_validate import envoy_validate, needs_envoy, static_bootstrap
from tests.pilot.fixtures import BOOKINFO_SERVICES, push_from_yaml, sidecar

STRICT_NS = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
"""

MESH_DISABLE_WORKLOAD_PORT_STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: DISABLE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: UNSET}
  portLevelMtls: {"9080": {mode: STRICT}}
"""


def _by_name(listeners):
    return {l.name: l for l in listeners}


def _chain_modes(listener):
    return sorted((c.filter_chain_match.transport_protocol, c.HasField("transport_socket")) for c in listener.filter_chains)


def test_explicit_mode_has_http_proxy_and_inbound_listeners():
    push = push_from_yaml(BOOKINFO_SERVICES)
    ls = _by_name(build_listeners(sidecar(ip="127.0.0.5"), push))
    assert set(ls) == {"http_proxy", "127.0.0.5_15080"}
    hp = ls["http_proxy"]
    assert hp.address.socket_address.address == "127.0.0.1" and hp.address.socket_address.port_value == 15001
    hcm = MessageToDict(hp.filter_chains[0].filters[0].typed_config)
    assert hcm["rds"]["routeConfigName"] == "http_proxy"
    assert [f["name"] for f in hcm["httpFilters"]] == ["envoy.filters.http.fault", "envoy.filters.http.cors", "envoy.filters.http.router"]
    assert hcm["accessLog"][0]["typedConfig"]["logFormat"]["jsonFormat"]["response_flags"] == "%RESPONSE_FLAGS%"
    # Default PERMISSIVE: TLS and plaintext chains behind the TLS inspector.
    inbound = ls["127.0.0.5_15080"]
    assert _chain_modes(inbound) == [("raw_buffer", False), ("tls", True)]
    route = MessageToDict(inbound.filter_chains[0].filters[0].typed_config)["routeConfig"]
    assert route["virtualHosts"][0]["routes"][0]["route"]["cluster"] == "inbound|9080||"


def test_strict_namespace_policy_allows_only_tls():
    push = push_from_yaml(BOOKINFO_SERVICES + "---" + STRICT_NS)
    inbound = _by_name(build_listeners(sidecar(), push))["127.0.0.1_15080"]
    assert _chain_modes(inbound) == [("tls", True)]


def test_peer_authentication_precedence_mesh_namespace_workload_port():
    push = push_from_yaml(BOOKINFO_SERVICES + "---" + MESH_DISABLE_WORKLOAD_PORT_STRICT)
    assert effective_mode(push, "default", {"app": "reviews"}, 9080) is MtlsMode.STRICT
    assert effective_mode(push, "default", {"app": "reviews"}, 9090) is MtlsMode.DISABLE
    assert effective_mode(push, "default", {"app": "ratings"}, 9080) is MtlsMode.DISABLE
    assert effective_mode(push_from_yaml(BOOKINFO_SERVICES), "default", {}, 9080) is MtlsMode.PERMISSIVE
    reviews = sidecar(name="reviews-v1", labels={"app": "reviews", "version": "v1"})
    inbound = _by_name(build_listeners(reviews, push))["127.0.0.1_15080"]
    assert _chain_modes(inbound) == [("tls", True)]
    ratings = sidecar(name="ratings-v1", labels={"app": "ratings", "version": "v1"})
    assert _chain_modes(_by_name(build_listeners(ratings, push))["127.0.0.1_15080"]) == [("", False)]


def test_iptables_mode_virtual_listeners_and_per_port_listeners():
    push = push_from_yaml(BOOKINFO_SERVICES)
    proxy = sidecar(capture=CaptureMode.IPTABLES, ports=(WorkloadPort(port=9080, name="http", protocol="HTTP"),))
    ls = _by_name(build_listeners(proxy, push))
    assert {"virtualOutbound", "virtualInbound", "0.0.0.0_9080", "0.0.0.0_3306"} <= set(ls)
    vo = ls["virtualOutbound"]
    assert vo.use_original_dst.value and vo.address.socket_address.port_value == 15001
    assert MessageToDict(vo.default_filter_chain.filters[0].typed_config)["cluster"] == "PassthroughCluster"
    assert not ls["0.0.0.0_9080"].bind_to_port.value
    vi = ls["virtualInbound"]
    assert vi.address.socket_address.port_value == 15006
    assert not vi.HasField("use_original_dst")  # inbound stays on virtualInbound (as Istio)
    assert {c.filter_chain_match.destination_port.value for c in vi.filter_chains} == {9080, 0}
    # the catch-all is a port-less chain, never the default chain (STRICT ports must not fall through)
    assert vi.filter_chains[-1].name == "virtualInbound-catchall" and not vi.HasField("default_filter_chain")
    tcp = MessageToDict(ls["0.0.0.0_3306"].filter_chains[0].filters[0].typed_config)
    assert tcp["cluster"] == "outbound|3306||mysqldb.default.svc.cluster.local"


def test_registry_only_falls_back_to_blackhole():
    push = push_from_yaml(BOOKINFO_SERVICES, mesh=MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))
    proxy = sidecar(capture=CaptureMode.IPTABLES)
    vo = _by_name(build_listeners(proxy, push))["virtualOutbound"]
    assert MessageToDict(vo.default_filter_chain.filters[0].typed_config)["cluster"] == "BlackHoleCluster"


def test_output_is_deterministic():
    push = push_from_yaml(BOOKINFO_SERVICES + "---" + STRICT_NS)
    a = [l.SerializeToString(deterministic=True) for l in build_listeners(sidecar(capture=CaptureMode.IPTABLES), push)]
    b = [l.SerializeToString(deterministic=True) for l in build_listeners(sidecar(capture=CaptureMode.IPTABLES), push)]
    assert a == b


@needs_envoy
def test_real_envoy_accepts_generated_listeners(tmp_path):
    push = push_from_yaml(BOOKINFO_SERVICES + "---" + MESH_DISABLE_WORKLOAD_PORT_STRICT)
    listeners = []
    for capture in (CaptureMode.EXPLICIT, CaptureMode.IPTABLES):
        for labels in ({"app": "reviews"}, {"app": "ratings"}):
            proxy = sidecar(capture=capture, labels=labels)
            for l in build_listeners(proxy, push):
                if l.name in {x.name for x in listeners}:
                    continue
                # Static validation cannot fetch RDS: inline an empty route config instead.
                listeners.append(l)
    referenced = {"inbound|9080||", "PassthroughCluster", "BlackHoleCluster", "InboundPassthroughClusterIpv4",
                  "outbound|3306||mysqldb.default.svc.cluster.local"}
    clusters = [cluster_pb2.Cluster(name=n, type=cluster_pb2.Cluster.STATIC) for n in sorted(referenced)]
    # Port clash between explicit inbound and iptables listeners is a bootstrap artefact: give
    # each listener a distinct port so Envoy validates every filter chain.
    bootstrap = static_bootstrap(listeners, clusters)
    for i, l in enumerate(bootstrap["static_resources"]["listeners"]):
        l["address"]["socket_address"]["port_value"] = 20000 + i
        l.pop("bind_to_port", None)
    bootstrap["dynamic_resources"] = {
        "ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                       "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]},
    }
    bootstrap["static_resources"]["clusters"].append({
        "name": "xds-grpc", "type": "STATIC",
        "typed_extension_protocol_options": bootstrap["static_resources"]["clusters"][0]["typed_extension_protocol_options"],
        "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15010}}}}]}]},
    })
    res = envoy_validate(bootstrap, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
