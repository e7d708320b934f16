"""Gateway LDS (+ the CDS it needs): listeners per port, filter chains per server mode, TLS contexts."""
from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from isthmus.pilot.translate.clusters import build_clusters
from isthmus.pilot.translate.listeners import build_listeners
from tests.pilot.fixtures import push_from_yaml
from tests.pilot.translate.gateway_fixtures import EGRESS, INGRESS, all_modes_push, gateway_proxy

PUSH = all_modes_push()


def listeners(proxy=INGRESS, push=PUSH) -> dict:
    return {l.name: l for l in build_listeners(proxy, push)}


def chains(listener) -> dict:
    return {c.name: c for c in listener.filter_chains}


def unpack(any_msg, cls):
    out = cls()
    any_msg.Unpack(out)
    return out


def hcm_of(chain) -> hcm_pb2.HttpConnectionManager:
    return unpack(chain.filters[-1].typed_config, hcm_pb2.HttpConnectionManager)


def tcp_of(chain) -> tcp_proxy_pb2.TcpProxy:
    return unpack(chain.filters[-1].typed_config, tcp_proxy_pb2.TcpProxy)


def tls_of(chain) -> tls_pb2.DownstreamTlsContext:
    return unpack(chain.transport_socket.typed_config, tls_pb2.DownstreamTlsContext)


def test_one_listener_per_port_tls_ones_inspect_the_client_hello():
    ls = listeners()
    assert sorted(ls) == ["0.0.0.0_15443", "0.0.0.0_31400", "0.0.0.0_443", "0.0.0.0_80", "0.0.0.0_8080",
                          "0.0.0.0_8443", "0.0.0.0_9443"]
    with_inspector = {n for n, l in ls.items() if [f.name for f in l.listener_filters] == ["envoy.filters.listener.tls_inspector"]}
    assert with_inspector == {"0.0.0.0_443", "0.0.0.0_8443", "0.0.0.0_9443", "0.0.0.0_15443"}
    assert ls["0.0.0.0_8080"].address.socket_address.port_value == 8080


def test_http_chain_is_the_gateway_connection_manager():
    (chain,) = listeners()["0.0.0.0_8080"].filter_chains
    hcm = hcm_of(chain)
    assert hcm.rds.route_config_name == "http.8080" and hcm.use_remote_address.value
    assert hcm.forward_client_cert_details == hcm_pb2.HttpConnectionManager.SANITIZE_SET
    d = hcm.set_current_client_cert_details
    assert (d.subject.value, d.cert, d.dns, d.uri) == (True, True, True, True)
    assert [f.name for f in hcm.http_filters][-1] == "envoy.filters.http.router"


def test_https_servers_get_one_chain_each_matched_by_sni():
    cs = chains(listeners()["0.0.0.0_443"])
    assert {n: list(c.filter_chain_match.server_names) for n, c in cs.items()} == {
        "https.443.https-simple.https-gateway.default": ["simple.example.com"],
        "https.443.https-mutual.https-gateway.default": ["mutual.example.com"],
        "https.443.https-optional.https-gateway.default": ["optional.example.com"],
        "passthrough|secure.backend.test": ["secure.backend.test"],
    }
    assert hcm_of(cs["https.443.https-mutual.https-gateway.default"]).rds.route_config_name == \
        "https.443.https-mutual.https-gateway.default"


def _sds_names(configs) -> list[str]:
    return [c.name for c in configs]


def test_tls_modes_become_downstream_tls_contexts():
    cs = chains(listeners()["0.0.0.0_443"])
    simple = tls_of(cs["https.443.https-simple.https-gateway.default"])
    assert _sds_names(simple.common_tls_context.tls_certificate_sds_secret_configs) == ["kubernetes://simple-cred"]
    assert simple.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.HasField("ads")
    assert not simple.require_client_certificate.value
    assert not simple.common_tls_context.HasField("combined_validation_context")
    assert list(simple.common_tls_context.alpn_protocols) == ["h2", "http/1.1"]
    assert simple.common_tls_context.tls_params.tls_minimum_protocol_version == common_pb2.TlsParameters.TLSv1_2

    mutual = tls_of(cs["https.443.https-mutual.https-gateway.default"])
    assert mutual.require_client_certificate.value
    assert mutual.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name == \
        "kubernetes://mutual-cred-cacert"

    optional = tls_of(cs["https.443.https-optional.https-gateway.default"])
    assert not optional.require_client_certificate.value
    assert optional.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name == \
        "kubernetes://mutual-cred-cacert"

    (egress,) = listeners(EGRESS)["0.0.0.0_443"].filter_chains
    istio = tls_of(egress)
    assert istio.require_client_certificate.value
    ctx = istio.common_tls_context
    assert _sds_names(ctx.tls_certificate_sds_secret_configs) == ["default"]
    assert ctx.tls_certificate_sds_secret_configs[0].sds_config.api_config_source.grpc_services[0].envoy_grpc.cluster_name == "sds-grpc"
    assert ctx.combined_validation_context.validation_context_sds_secret_config.name == "ROOTCA"


def test_passthrough_and_tcp_servers_proxy_bytes():
    cs = chains(listeners()["0.0.0.0_443"])
    passthrough = cs["passthrough|secure.backend.test"]
    assert not passthrough.HasField("transport_socket")
    assert tcp_of(passthrough).cluster == "outbound|8443||secure.backend.test"
    (tcp,) = listeners()["0.0.0.0_31400"].filter_chains
    assert tcp_of(tcp).cluster == "outbound|9000||tcp-echo.default.svc.cluster.local"
    (terminated,) = listeners()["0.0.0.0_9443"].filter_chains
    assert _sds_names(tls_of(terminated).common_tls_context.tls_certificate_sds_secret_configs) == ["kubernetes://simple-cred"]
    weighted = tcp_of(terminated).weighted_clusters.clusters
    assert [(c.name, c.weight) for c in weighted] == [("outbound|9000||tcp-echo.default.svc.cluster.local", 50),
                                                      ("outbound|3306||mysqldb.default.svc.cluster.local", 50)]


def test_auto_passthrough_matches_mesh_sni_and_uses_sni_dnat_clusters():
    cs = chains(listeners()["0.0.0.0_15443"])
    sni = "outbound_.9080_._.reviews.default.svc.cluster.local"
    chain = cs[sni]
    assert list(chain.filter_chain_match.server_names) == [sni]
    assert "istio" in chain.filter_chain_match.application_protocols
    assert tcp_of(chain).cluster == sni
    assert "outbound_.8443_._.secure.backend.test" not in cs  # mesh-external services are not exposed
    cds = {c.name: c for c in build_clusters(INGRESS, PUSH)}
    dnat = cds[sni]
    assert not dnat.HasField("transport_socket") and not dnat.transport_socket_matches
    assert dnat.eds_cluster_config.service_name == "outbound|9080||reviews.default.svc.cluster.local"


def test_star_hosts_match_any_sni_and_serverless_listeners_are_omitted():
    text = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: c}
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]
"""
    ls = listeners(push=push_from_yaml(text))
    assert list(ls) == ["0.0.0.0_443"]  # the TCP server has no VirtualService: no listener
    (chain,) = ls["0.0.0.0_443"].filter_chains
    assert not chain.filter_chain_match.server_names


def test_port_map_and_bind_come_from_the_node():
    proxy = gateway_proxy(port_map={443: 18443, 8080: 18080}, bind="127.0.0.1")
    ls = listeners(proxy)
    assert "127.0.0.1_18443" in ls and "127.0.0.1_18080" in ls and "127.0.0.1_80" in ls
    assert hcm_of(ls["127.0.0.1_18080"].filter_chains[0]).rds.route_config_name == "http.18080"


def test_gateways_get_clusters_for_every_service_and_credential_tls_origination():
    cds = {c.name: c for c in build_clusters(EGRESS, PUSH)}
    origination = cds["outbound|443||api.external.test"]
    assert origination.type == cluster_pb2.Cluster.STRICT_DNS
    ctx = unpack(origination.transport_socket.typed_config, tls_pb2.UpstreamTlsContext)
    assert ctx.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name == \
        "kubernetes://external-ca-cacert"
    assert not any(n.startswith("inbound|") for n in cds)
