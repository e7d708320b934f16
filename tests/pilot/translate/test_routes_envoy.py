"""The oracle: real Envoy (`--mode validate`) accepts every RouteConfiguration we generate
for the Bookinfo corpus VirtualServices and for the all-features VirtualService, inside
an HCM with fault → cors → router and a static cluster for every referenced name."""
from __future__ import annotations

import pytest
from google.protobuf import any_pb2

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.proxy import CaptureMode
from isthmus.pilot.translate.routes import build_routes
from isthmus.pilot.translate.simulate_routes import destinations
from tests.conftest import corpus_path
from tests.pilot.envoy_validate import envoy_validate, needs_envoy, static_bootstrap
from tests.pilot.fixtures import BOOKINFO_SERVICES, push_from_yaml, sidecar
from tests.pilot.translate.test_routes import FEATURE_YAML, WILDCARD_YAML

pytestmark = [pytest.mark.envoy, needs_envoy]

BOOKINFO = ("istio-samples", "bookinfo", "networking")
HTTP_FILTERS = ("envoy.filters.http.fault", "envoy.filters.http.cors", "envoy.filters.http.router")


def _pack(message) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(message)
    return a


def _listener(index: int, route_config) -> listener_pb2.Listener:
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=f"routes_{index}",
        route_config=route_config,
        http_filters=[
            hcm_pb2.HttpFilter(name=HTTP_FILTERS[0], typed_config=_pack(fault_pb2.HTTPFault())),
            hcm_pb2.HttpFilter(name=HTTP_FILTERS[1], typed_config=_pack(cors_pb2.Cors())),
            hcm_pb2.HttpFilter(name=HTTP_FILTERS[2], typed_config=_pack(router_pb2.Router())),
        ],
    )
    listener = listener_pb2.Listener(name=f"routes_{index}")
    listener.address.socket_address.address = "127.0.0.1"
    listener.address.socket_address.port_value = 20000 + index
    listener.filter_chains.add().filters.add(name="envoy.filters.network.http_connection_manager", typed_config=_pack(hcm))
    return listener


def _clusters(route_configs) -> list[cluster_pb2.Cluster]:
    names: set[str] = set()
    for config in route_configs:
        for vh in config.virtual_hosts:
            for r in vh.routes:
                names.update(c for c, _ in destinations(r))
                names.update(m.cluster for m in r.route.request_mirror_policies)
    out = []
    for name in sorted(names):
        c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
        c.connect_timeout.seconds = 1
        c.load_assignment.cluster_name = name
        out.append(c)
    return out


def _route_configs(yaml_text: str, mesh: MeshConfig | None = None, proxy=None) -> list:
    push = push_from_yaml(BOOKINFO_SERVICES + "\n---\n" + yaml_text, mesh)
    return build_routes(proxy or sidecar(capture=CaptureMode.IPTABLES), push, ["9080", "8000", "80", "http_proxy"])


def _validate(route_configs, tmp_path) -> None:
    bootstrap = static_bootstrap(
        listeners=[_listener(i, rc) for i, rc in enumerate(route_configs)],
        clusters=_clusters(route_configs),
    )
    result = envoy_validate(bootstrap, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _corpus_cases() -> list[str]:
    return [
        "virtual-service-all-v1.yaml", "virtual-service-details-v2.yaml", "virtual-service-ratings-db.yaml",
        "virtual-service-ratings-mysql.yaml", "virtual-service-ratings-mysql-vm.yaml",
        "virtual-service-ratings-test-abort.yaml", "virtual-service-ratings-test-delay.yaml",
        "virtual-service-reviews-50-v3.yaml", "virtual-service-reviews-80-20.yaml",
        "virtual-service-reviews-90-10.yaml", "virtual-service-reviews-jason-v2-v3.yaml",
        "virtual-service-reviews-test-v2.yaml", "virtual-service-reviews-v2-v3.yaml",
        "virtual-service-reviews-v3.yaml", "fault-injection-details-v1.yaml",
    ]


def test_envoy_accepts_routes_for_every_corpus_virtual_service(tmp_path):
    dr = corpus_path(*BOOKINFO, "destination-rule-all.yaml").read_text()
    configs = []
    for name in _corpus_cases():
        vs = corpus_path(*BOOKINFO, name).read_text()
        text = vs if name.startswith("fault-injection") else dr + "\n---\n" + vs
        for rc in _route_configs(text):
            rc.name = f"{name}:{rc.name}"
            configs.append(rc)
    _validate(configs, tmp_path)


def test_envoy_accepts_routes_exercising_every_feature(tmp_path):
    configs = _route_configs(FEATURE_YAML)
    configs += _route_configs(WILDCARD_YAML)
    configs += _route_configs(FEATURE_YAML, MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"),
                              proxy=sidecar("reviews-v2", labels={"app": "reviews", "version": "v2"}))
    for i, rc in enumerate(configs):
        rc.name = f"{i}:{rc.name}"
    _validate(configs, tmp_path)
