"""Gateway RDS: VirtualServices bound to Gateways become virtual hosts, as Istio builds them."""
from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc

from isthmus.pilot.translate.routes import build_routes
from tests.pilot.fixtures import push_from_yaml
from tests.pilot.translate.gateway_fixtures import EGRESS, INGRESS, all_modes_push, open_corpus

PRODUCTPAGE = "outbound|9080||productpage.default.svc.cluster.local"
SERVICES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc}
spec:
  hosts: [productpage.default.svc.cluster.local, details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: web}
spec:
  hosts: [web.web.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
"""


def gateway(servers: str, name: str = "gw", namespace: str = "istio-system") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
{servers}
"""


def vs(name: str, hosts: str, body: str, namespace: str = "default", gateways: str = "[istio-system/gw]") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: {hosts}
  gateways: {gateways}
{body}
"""


def route(host: str = "productpage.default.svc.cluster.local", port: int = 9080, match: str = "") -> str:
    m = f"\n  - match: {match}\n    route:" if match else "\n  - route:"
    return f"  http:{m} [{{destination: {{host: {host}, port: {{number: {port}}}}}}}]"


HTTP80 = """  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]"""


def routes(yaml_text: str, *names: str, proxy=INGRESS) -> dict:
    push = push_from_yaml(SERVICES + "---\n" + yaml_text)
    return {r.name: r for r in build_routes(proxy, push, list(names))}


def domains(config) -> dict[str, list[str]]:
    return {v.name: list(v.domains) for v in config.virtual_hosts}


def clusters(vhost: rc.VirtualHost) -> list[str]:
    return [r.route.cluster for r in vhost.routes if r.HasField("route")]


def test_corpus_bookinfo_gateway():
    push = push_from_yaml(SERVICES + "---\n" + open_corpus("bookinfo-gateway.yaml"))
    (config,) = build_routes(INGRESS, push, ["http.8080"])
    assert config.ignore_port_in_host_matching and not config.validate_clusters.value
    (vhost,) = config.virtual_hosts
    assert (vhost.name, list(vhost.domains)) == ("*:8080", ["*"])
    matches = [(r.match.WhichOneof("path_specifier"), getattr(r.match, r.match.WhichOneof("path_specifier"))) for r in vhost.routes]
    assert matches == [("path", "/productpage"), ("prefix", "/static"), ("path", "/login"), ("path", "/logout"),
                       ("prefix", "/api/v1/products")]
    assert set(clusters(vhost)) == {PRODUCTPAGE}


def test_unknown_or_serverless_route_names_are_empty():
    got = routes(gateway(HTTP80), "http.81", "https.443.x.y.z")
    assert [len(c.virtual_hosts) for c in got.values()] == [0, 0]


def test_no_virtual_service_gives_a_404_blackhole_host():
    (vhost,) = routes(gateway(HTTP80), "http.80")["http.80"].virtual_hosts
    assert (vhost.name, list(vhost.domains), list(vhost.routes)) == ("blackhole:80", ["*"], [])


def test_namespace_scoping_of_server_hosts():
    servers = """  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["web/*", "./own.example.com", "*/any.example.com"]"""
    text = (gateway(servers)
            + "---" + vs("from-web", "['web.example.com']", route("web.web.svc.cluster.local", 80), namespace="web")
            + "---" + vs("from-default", "['web.example.com', 'any.example.com', 'own.example.com']", route())
            + "---" + vs("from-system", "['own.example.com']", route("details.default.svc.cluster.local"), namespace="istio-system"))
    config = routes(text, "http.80")["http.80"]
    assert domains(config) == {"any.example.com:80": ["any.example.com"], "own.example.com:80": ["own.example.com"],
                               "web.example.com:80": ["web.example.com"]}
    by_name = {v.name: v for v in config.virtual_hosts}
    assert clusters(by_name["web.example.com:80"]) == ["outbound|80||web.web.svc.cluster.local"]  # web/* only for web
    assert clusters(by_name["own.example.com:80"]) == ["outbound|9080||details.default.svc.cluster.local"]  # ./ = istio-system
    assert clusters(by_name["any.example.com:80"]) == [PRODUCTPAGE]


def test_wildcards_on_either_side_keep_the_specific_host():
    servers = """  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com", "exact.test"]"""
    text = gateway(servers) + "---" + vs("a", "['a.example.com', 'b.other.com']", route()) + "---" + vs("b", "['*.test']", route())
    assert domains(routes(text, "http.80")["http.80"]) == {"a.example.com:80": ["a.example.com"], "exact.test:80": ["exact.test"]}


def test_virtual_services_for_one_host_are_merged_oldest_first_catch_all_last():
    text = (gateway(HTTP80)
            + "---" + vs("first", "['shop.example.com']", route())
            + "---" + vs("second", "['shop.example.com']", route("details.default.svc.cluster.local", match="[{uri: {prefix: /details}}]")))
    (vhost,) = routes(text, "http.80")["http.80"].virtual_hosts
    assert [r.match.prefix for r in vhost.routes] == ["/details", "/"]
    assert clusters(vhost) == ["outbound|9080||details.default.svc.cluster.local", PRODUCTPAGE]


def test_match_gateways_and_port_select_routes_per_gateway():
    servers = HTTP80 + """
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: c}"""
    body = """  http:
  - match: [{gateways: [mesh]}]
    route: [{destination: {host: details}}]
  - match: [{gateways: [istio-system/gw], port: 443}]
    route: [{destination: {host: productpage}}]
  - match: [{gateways: [gw.istio-system.svc.cluster.local], port: 80}]
    route: [{destination: {host: details}}]"""
    text = gateway(servers) + "---" + vs("x", "['x.example.com']", body, gateways="[istio-system/gw, mesh]")
    got = routes(text, "http.80", "https.443.https.gw.istio-system")
    assert clusters(got["http.80"].virtual_hosts[0]) == ["outbound|9080||details.default.svc.cluster.local"]
    assert clusters(got["https.443.https.gw.istio-system"].virtual_hosts[0]) == [PRODUCTPAGE]


def test_exported_elsewhere_virtual_services_are_invisible():
    text = gateway(HTTP80) + "---" + vs("private", "['p.example.com']", route() + "\n  exportTo: ['.']")
    assert domains(routes(text, "http.80")["http.80"]) == {"blackhole:80": ["*"]}


def test_https_redirect_requires_tls_even_without_a_virtual_service():
    servers = """  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [a.example.com, b.example.com]
    tls: {httpsRedirect: true}"""
    config = routes(gateway(servers) + "---" + vs("a", "['a.example.com']", route()), "http.80")["http.80"]
    assert {v.name: v.require_tls for v in config.virtual_hosts} == {"a.example.com:80": rc.VirtualHost.ALL,
                                                                    "b.example.com:80": rc.VirtualHost.ALL}


def test_redirect_on_a_tls_server_defaults_to_https():
    servers = """  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: c}"""
    body = "  http:\n  - redirect: {uri: /new, derivePort: FROM_REQUEST_PORT}"
    (vhost,) = routes(gateway(servers) + "---" + vs("r", "['*']", body), "https.443.https.gw.istio-system")[
        "https.443.https.gw.istio-system"].virtual_hosts
    assert vhost.routes[0].redirect.port_redirect == 0  # 443 is https's default port


def test_misdirected_requests_get_421_for_hosts_another_chain_serves():
    got = {r.name: r for r in build_routes(INGRESS, all_modes_push(), [
        "https.8443.https.wildcard-a.default", "https.8443.https.wildcard-b.default", "http.80",
        "https.443.https-simple.https-gateway.default"])}
    wild_a = domains(got["https.8443.https.wildcard-a.default"])
    assert wild_a == {"a.wild.test:8443": ["a.wild.test"], "misdirected_request:8443": ["b.wild.test"]}
    assert domains(got["https.8443.https.wildcard-b.default"])["misdirected_request:8443"] == ["*.wild.test"]
    misdirected = got["https.8443.https.wildcard-a.default"].virtual_hosts[-1].routes[0]
    assert misdirected.direct_response.status == 421
    assert domains(got["https.443.https-simple.https-gateway.default"])["misdirected_request:443"] == [
        "mutual.example.com", "optional.example.com", "secure.backend.test"]
    assert "misdirected_request:80" not in domains(got["http.80"])  # no SNI, nothing to misdirect


def test_egress_gateway_routes_mesh_traffic_to_the_external_service():
    push = all_modes_push()
    (config,) = build_routes(EGRESS, push, ["https.443.https.istio-egressgateway.default"])
    (vhost,) = config.virtual_hosts
    assert list(vhost.domains) == ["api.external.test"] and clusters(vhost) == ["outbound|443||api.external.test"]
