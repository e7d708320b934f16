"""The oracles over every gateway mode: real Envoy (`--mode validate`) accepts what pilot sends a
gateway, and the Python data plane's compiler accepts it and routes virtual requests through it."""
from __future__ import annotations

import pytest

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.proxy.config.simulate import NO_FILTER_CHAIN, NO_ROUTE, VirtualRequest, simulate
from tests.pilot.envoy_validate import envoy_validate, needs_envoy
from tests.pilot.translate.gateway_fixtures import EGRESS, INGRESS, all_modes_push, envoy_bootstrap, gateway_proxy, snapshot

PUSH = all_modes_push()
PRODUCTPAGE = "outbound|9080||productpage.default.svc.cluster.local"


@needs_envoy
@pytest.mark.envoy
@pytest.mark.parametrize("proxy", [INGRESS, EGRESS, gateway_proxy(port_map={80: 8080, 443: 8443, 8080: 18080}, bind="127.0.0.1")],
                         ids=["ingress", "egress", "port-map"])
def test_real_envoy_accepts_every_gateway_mode(proxy, tmp_path):
    result = envoy_validate(envoy_bootstrap(proxy, PUSH), tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@needs_envoy
@pytest.mark.envoy
def test_real_envoy_accepts_registry_only_mesh(tmp_path):
    push = all_modes_push(MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))
    result = envoy_validate(envoy_bootstrap(INGRESS, push), tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def ingress():
    return snapshot(INGRESS, PUSH)


def https(sni: str, authority: str = "", path: str = "/") -> VirtualRequest:
    return VirtualRequest(authority=authority or sni, path=path, sni=sni, tls=True, scheme="https", alpn=("h2",))


def test_bookinfo_paths_through_the_http_listener(ingress):
    for path in ("/productpage", "/static/x.css", "/login", "/logout", "/api/v1/products/1"):
        assert simulate(ingress, 8080, VirtualRequest(authority="bookinfo.example.com", path=path)).cluster == PRODUCTPAGE
    assert simulate(ingress, 8080, VirtualRequest(authority="x", path="/other")).error == NO_ROUTE


def test_sni_picks_the_server_and_its_routes(ingress):
    out = simulate(ingress, 443, https("simple.example.com"))
    assert out.filter_chain.name == "https.443.https-simple.https-gateway.default" and out.cluster == PRODUCTPAGE
    assert simulate(ingress, 443, https("mutual.example.com", "mutual.example.com:443")).cluster == PRODUCTPAGE
    assert simulate(ingress, 443, https("nobody.example.com")).error == NO_FILTER_CHAIN


def test_connection_reuse_across_hosts_is_misdirected(ingress):
    out = simulate(ingress, 8443, https("a.wild.test", "b.wild.test"))
    assert out.filter_chain.name == "https.8443.https.wildcard-a.default"
    assert out.direct_response is not None and out.direct_response.status == 421
    assert simulate(ingress, 8443, https("b.wild.test")).cluster == "outbound|9080||details.default.svc.cluster.local"


def test_passthrough_tcp_and_auto_passthrough(ingress):
    assert simulate(ingress, 443, VirtualRequest(sni="secure.backend.test", tls=True)).cluster == "outbound|8443||secure.backend.test"
    assert simulate(ingress, 31400, VirtualRequest()).cluster == "outbound|9000||tcp-echo.default.svc.cluster.local"
    sni = "outbound_.9080_._.ratings.default.svc.cluster.local"
    out = simulate(ingress, 15443, VirtualRequest(sni=sni, tls=True, alpn=("istio-peer-exchange", "istio")))
    assert out.cluster == sni and out.endpoints


def test_https_redirect_vhost(ingress):
    out = simulate(ingress, 80, VirtualRequest(authority="simple.example.com"))
    assert out.virtual_host.require_tls == "all"


def test_egress_gateway_terminates_mesh_mtls_and_originates_tls():
    snap = snapshot(EGRESS, PUSH)
    out = simulate(snap, 443, https("api.external.test"))
    assert out.cluster == "outbound|443||api.external.test"
    assert out.cluster_config.discovery_type == "STRICT_DNS"
