"""Egress seen from the sidecar (explicit capture): unknown hosts under ALLOW_ANY / REGISTRY_ONLY
(mesh-wide or a Sidecar's outboundTrafficPolicy), `resolution: NONE`, and the mesh half of
the egress gateway pattern."""
from __future__ import annotations

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.proxy import CaptureMode
from isthmus.proxy.config.simulate import VirtualRequest, simulate
from tests.pilot.fixtures import push_from_yaml, sidecar
from tests.pilot.translate.gateway_fixtures import EGRESS, all_modes_push, snapshot

NONE_SE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy}
spec:
  hosts: [legacy.external.test]
  addresses: [10.9.9.9]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 7070, name: http, protocol: HTTP}]
"""
REGISTRY_ONLY_SIDECAR = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: locked}
spec:
  workloadSelector: {labels: {app: productpage}}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""


def send(snap, authority: str):
    return simulate(snap, "http_proxy", VirtualRequest(authority=authority))


def test_allow_any_passes_unknown_destinations_through_with_the_authority():
    snap = snapshot(sidecar(), all_modes_push())
    out = send(snap, "10.1.2.3:8080")
    assert out.virtual_host.name == "allow_any" and out.cluster == "PassthroughCluster"
    assert out.cluster_config.original_dst.use_http_header


def test_registry_only_mesh_wide_or_per_sidecar_blocks_with_502():
    for push, proxy in ((all_modes_push(MeshConfig(outbound_traffic_policy="REGISTRY_ONLY")), sidecar()),
                        (all_modes_push(extra=REGISTRY_ONLY_SIDECAR), sidecar())):
        out = send(snapshot(proxy, push), "10.1.2.3:8080")
        assert out.virtual_host.name == "block_all" and out.direct_response.status == 502
    other = sidecar("reviews-v1", labels={"app": "reviews"})
    assert send(snapshot(other, all_modes_push(extra=REGISTRY_ONLY_SIDECAR)), "10.1.2.3:8080").cluster == "PassthroughCluster"


def test_resolution_none_names_the_original_destination_from_the_authority():
    push = push_from_yaml(NONE_SE)
    snap = snapshot(sidecar(), push)
    out = send(snap, "10.9.9.9:7070")
    assert out.cluster == "outbound|7070||legacy.external.test"
    assert out.cluster_config.discovery_type == "ORIGINAL_DST" and out.cluster_config.original_dst.use_http_header
    from isthmus.pilot.translate.routes import build_routes

    (config,) = build_routes(sidecar(), push, ["http_proxy"])
    vhost = next(v for v in config.virtual_hosts if v.name == "legacy.external.test:7070")
    assert [(h.header.key, h.header.value) for h in vhost.request_headers_to_add] == [
        ("x-envoy-original-dst-host", "%REQ(:AUTHORITY)%")]
    iptables = snapshot(sidecar(capture=CaptureMode.IPTABLES), push)
    assert not iptables.clusters["outbound|7070||legacy.external.test"].original_dst.use_http_header


def test_mesh_traffic_for_an_external_host_goes_to_the_egress_gateway_over_mtls():
    snap = snapshot(sidecar(), all_modes_push())
    out = send(snap, "api.external.test")
    assert out.cluster == "outbound|443||istio-egressgateway.istio-system.svc.cluster.local"
    gateway_side = simulate(snapshot(EGRESS, all_modes_push()), 443,
                            VirtualRequest(authority="api.external.test", sni="api.external.test", tls=True))
    assert gateway_side.cluster == "outbound|443||api.external.test"
