"""Gateways on the xDS side: the port map and bind address from the node, SDS in the generator
table, and Secret changes pushed only to gateways of their namespace."""
from __future__ import annotations

import pytest

from isthmus.pilot.model.proxy import Proxy, ProxyType
from isthmus.pilot.push.request import PushRequest
from isthmus.pilot.xds import typeurls as T
from isthmus.pilot.xds.generators import default_generators
from isthmus.pilot.xds.node import NodeInvalid, proxy_from_node
from isthmus.pilot.xds.relevance import proxy_needs_push
from isthmus.proxy.bootstrap import WorkloadIdentity, node_metadata
from isthmus.shared.config.resource import ResourceKey
from tests.helpers.tlsca import TestCA, tls_secret_yaml
from tests.pilot.fixtures import push_from_yaml
from tests.pilot.xds.harness import make_node


def test_port_map_and_bind_from_node_metadata():
    p = proxy_from_node(make_node("istio-ingressgateway", "istio-system", kind="router",
                                  GATEWAY_PORT_MAP="80=8080, 443=8443", GATEWAY_BIND="127.0.0.1"))
    assert p.is_gateway and dict(p.gateway_port_map) == {80: 8080, 443: 8443} and p.gateway_bind == "127.0.0.1"
    assert (p.listen_port(80), p.listen_port(15443)) == (8080, 15443)
    as_map = proxy_from_node(make_node("gw", "istio-system", kind="router", GATEWAY_PORT_MAP={"80": 8081}))
    assert dict(as_map.gateway_port_map) == {80: 8081} and as_map.gateway_bind == "0.0.0.0"


@pytest.mark.parametrize("md,fragment", [
    ({"GATEWAY_PORT_MAP": "80:8080"}, "GATEWAY_PORT_MAP"),
    ({"GATEWAY_PORT_MAP": "80=99999"}, "port number"),
    ({"GATEWAY_BIND": "localhost"}, "GATEWAY_BIND"),
])
def test_bad_gateway_metadata_is_refused(md, fragment):
    with pytest.raises(NodeInvalid, match=fragment):
        proxy_from_node(make_node("gw", "istio-system", kind="router", **md))


def test_the_agent_sends_what_pilot_reads():
    w = WorkloadIdentity(name="istio-ingressgateway", namespace="istio-system", proxy_type="router",
                         gateway_port_map=((80, 8080), (443, 8443)), gateway_bind="127.0.0.1")
    md = node_metadata(w, "isthmus")
    assert (md["GATEWAY_PORT_MAP"], md["GATEWAY_BIND"]) == ("80=8080,443=8443", "127.0.0.1")
    assert "GATEWAY_PORT_MAP" not in node_metadata(WorkloadIdentity(name="app"), "isthmus")


def _proxy(ns: str, kind: ProxyType) -> Proxy:
    return Proxy(id=f"{kind.value}~10.0.0.1~p.{ns}~{ns}.svc.cluster.local", type=kind, ip_addresses=("10.0.0.1",), namespace=ns)


def test_secret_changes_concern_only_gateways_of_their_namespace():
    change = PushRequest(full=True, configs_updated=frozenset({ResourceKey("Secret", "istio-system", "cred")}))
    assert proxy_needs_push(_proxy("istio-system", ProxyType.ROUTER), change, "istio-system")
    assert not proxy_needs_push(_proxy("default", ProxyType.ROUTER), change, "istio-system")
    assert not proxy_needs_push(_proxy("istio-system", ProxyType.SIDECAR), change, "istio-system")


def test_sds_is_in_the_generator_table():
    ca = TestCA()
    push = push_from_yaml(tls_secret_yaml("cred", "istio-system", ca.issue("a.example.com"), ca=ca.pem))
    gen = default_generators()[T.SECRET]
    got = gen.generate(_proxy("istio-system", ProxyType.ROUTER), push, frozenset({"kubernetes://cred", "kubernetes://cred-cacert"}))
    assert sorted(s.name for s in got) == ["kubernetes://cred", "kubernetes://cred-cacert"]


def test_debug_pages_redact_private_keys():
    from isthmus.pilot.xds.debug import _manifest, _redacted

    ca = TestCA()
    leaf = ca.issue("a.example.com")
    push = push_from_yaml(tls_secret_yaml("cred", "istio-system", leaf))
    (secret,) = default_generators()[T.SECRET].generate(_proxy("istio-system", ProxyType.ROUTER), push, frozenset({"kubernetes://cred"}))
    shown = _redacted(T.SECRET, secret)
    assert shown.tls_certificate.private_key.inline_string == "[redacted]"
    assert shown.tls_certificate.certificate_chain.inline_bytes == leaf.cert
    assert secret.tls_certificate.private_key.inline_bytes == leaf.key  # the pushed resource is untouched
    (resource,) = push.configs.resources()
    assert _manifest(resource)["spec"]["data"]["tls.key"] == "REDACTED"
