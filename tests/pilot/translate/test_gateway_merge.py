"""Merging the Gateways a router proxy serves: selection, ports (and the port map), conflicts,
route names, host scoping — and gateway name resolution for VirtualServices."""
from __future__ import annotations

import pytest

from isthmus.pilot.model.gateway import ServerHost, intersect_hosts, merge_gateways, sanitize_hosts
from isthmus.pilot.model.push_context import resolve_gateway_name
from tests.pilot.fixtures import push_from_yaml
from tests.pilot.translate.gateway_fixtures import EGRESS, INGRESS, all_modes_push, gateway_proxy, open_corpus


def gw(name: str, servers: str, namespace: str = "default", selector: str = "{istio: ingressgateway}") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {selector}
  servers:
{servers}
"""


def test_gateways_are_selected_by_labels():
    push = push_from_yaml(open_corpus("bookinfo-gateway.yaml"))
    merged = merge_gateways(INGRESS, push)
    assert [(p.listener_name, [s.gateway for s in p.servers]) for p in merged.ports] == [
        ("0.0.0.0_8080", ["default/bookinfo-gateway"])]
    assert not merge_gateways(EGRESS, push).ports
    assert not merge_gateways(gateway_proxy(labels={}), push).ports


def test_port_map_and_bind_decide_where_listeners_listen():
    servers = """  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: c}
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]
    bind: 127.0.0.9"""
    push = push_from_yaml(gw("g", servers))
    merged = merge_gateways(gateway_proxy(port_map={80: 8080, 443: 8443}, bind="127.0.0.1"), push)
    assert [p.listener_name for p in merged.ports] == ["127.0.0.1_8080", "127.0.0.1_8443", "127.0.0.9_9000"]
    http, https, tcp = (p.servers[0] for p in merged.ports)
    assert (http.port, http.listen_port, http.route_name) == (80, 8080, "http.8080")
    assert https.route_name == "https.8443.https.g.default" and tcp.route_name == ""


def test_http_servers_share_a_port_and_route_tls_servers_are_told_apart_by_sni():
    a = gw("a", """  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [a.example.com]
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: a}""")
    b = gw("b", """  - port: {number: 80, name: web, protocol: HTTP}
    hosts: [b.example.com]
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: [b.example.com]
    tls: {mode: SIMPLE, credentialName: b}""")
    merged = merge_gateways(INGRESS, push_from_yaml(a + "---" + b))
    assert [len(p.servers) for p in merged.ports] == [2, 2]
    assert [s.gateway for s in merged.servers_by_route["http.80"]] == ["default/a", "default/b"]
    assert set(merged.servers_by_route) == {"http.80", "https.443.https-a.a.default", "https.443.https-b.b.default"}
    assert not merged.rejected


def test_conflicting_servers_are_dropped_oldest_gateway_wins():
    first = gw("first", """  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shared.example.com]
    tls: {mode: SIMPLE, credentialName: a}
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]""")
    second = gw("second", """  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shared.example.com]
    tls: {mode: SIMPLE, credentialName: b}
  - port: {number: 9000, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: plain, protocol: HTTP}
    hosts: [other.example.com]""")
    merged = merge_gateways(INGRESS, push_from_yaml(first + "---" + second))
    assert [s.gateway for p in merged.ports for s in p.servers] == ["default/first", "default/first"]
    assert len(merged.rejected) == 3
    assert "shared.example.com already served with TLS" in merged.rejected[0]
    assert "conflicts with default/first port 9000 (TCP)" in merged.rejected[1]


def test_server_hosts_keep_their_namespace_scope():
    assert sanitize_hosts(("./a.com", "*/b.com", "web/c.com", "d.com", "*/*"), "istio-system") == (
        ServerHost("istio-system", "a.com"), ServerHost("", "b.com"), ServerHost("web", "c.com"),
        ServerHost("", "d.com"), ServerHost("", "*"))
    merged = merge_gateways(INGRESS, push_from_yaml(gw("g", """  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["./own.com", "web/web.com", "*.any.com"]""")))
    server = merged.ports[0].servers[0]
    assert server.hosts_for("default") == ("own.com", "*.any.com")
    assert server.hosts_for("web") == ("web.com", "*.any.com")


@pytest.mark.parametrize("server,vs,want", [
    (("*.foo.com",), ("a.foo.com", "b.bar.com"), ("a.foo.com",)),
    (("a.foo.com", "b.foo.com"), ("*.foo.com",), ("a.foo.com", "b.foo.com")),
    (("*",), ("*",), ("*",)),
    (("*",), ("x.com", "*.y.com"), ("x.com", "*.y.com")),
    (("*.com",), ("*.foo.com",), ("*.foo.com",)),
    (("foo.com",), ("bar.com",), ()),
])
def test_host_intersection_keeps_the_more_specific_name(server, vs, want):
    assert intersect_hosts(server, vs) == want


@pytest.mark.parametrize("name,want", [
    ("mesh", "mesh"), ("istio-system/egress", "istio-system/egress"), ("./egress", "web/egress"),
    ("egress", "web/egress"), ("istio-egressgateway.istio-system.svc.cluster.local", "istio-system/istio-egressgateway"),
    ("gw.other", "other/gw"),
])
def test_gateway_names_resolve_as_istio(name, want):
    assert resolve_gateway_name(name, "web") == want


def test_virtual_services_are_indexed_by_resolved_gateway():
    push = all_modes_push()
    names = [vs.name for vs in push.virtual_services("istio-system", "default/https-gateway")]
    assert names == ["simple", "passthrough"]
    assert [vs.name for vs in push.virtual_services("default", "mesh")] == ["external-through-egress"]
