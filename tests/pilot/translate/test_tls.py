"""TLS context builders: mesh mTLS (SDS default + ROOTCA) and DestinationRule client TLS."""
from __future__ import annotations

from envoy.config.core.v3 import config_source_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from isthmus.pilot.translate import tls
from isthmus.pilot.translate.naming import SDS_CLUSTER, SDS_DEFAULT, SDS_ROOTCA
from isthmus.shared.config.types import ClientTLSSettings

SAN = common_pb2.SubjectAltNameMatcher


def _sds_cluster(secret) -> str:
    return secret.sds_config.api_config_source.grpc_services[0].envoy_grpc.cluster_name


def test_sds_secret_points_at_agent_cluster():
    s = tls.sds_secret("default")
    assert s.name == "default"
    assert _sds_cluster(s) == SDS_CLUSTER
    src = s.sds_config.api_config_source
    assert src.api_type == src.GRPC and src.set_node_on_first_message_only
    assert s.sds_config.resource_api_version == config_source_pb2.ApiVersion.V3


def test_downstream_mtls_requires_client_cert_and_rootca():
    ctx = tls.downstream_tls_context(True, ("istio-peer-exchange", "h2", "http/1.1"))
    assert ctx.require_client_certificate.value is True
    common = ctx.common_tls_context
    assert [s.name for s in common.tls_certificate_sds_secret_configs] == [SDS_DEFAULT]
    assert common.combined_validation_context.validation_context_sds_secret_config.name == SDS_ROOTCA
    assert list(common.alpn_protocols) == ["istio-peer-exchange", "h2", "http/1.1"]
    assert common.tls_params.tls_minimum_protocol_version == common_pb2.TlsParameters.TLSv1_2


def test_downstream_without_client_cert_has_no_validation():
    ctx = tls.downstream_tls_context(False, ("h2",))
    assert ctx.HasField("require_client_certificate") and ctx.require_client_certificate.value is False
    assert not ctx.common_tls_context.HasField("combined_validation_context")
    assert [s.name for s in ctx.common_tls_context.tls_certificate_sds_secret_configs] == [SDS_DEFAULT]


def test_upstream_istio_mutual():
    ctx = tls.upstream_istio_mutual("outbound_.9080_.v1_.reviews.default.svc.cluster.local",
                                    ["spiffe://cluster.local/ns/default/sa/bookinfo-reviews"])
    assert ctx.sni == "outbound_.9080_.v1_.reviews.default.svc.cluster.local"
    common = ctx.common_tls_context
    assert [s.name for s in common.tls_certificate_sds_secret_configs] == [SDS_DEFAULT]
    combined = common.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == SDS_ROOTCA
    (m,) = combined.default_validation_context.match_typed_subject_alt_names
    assert m.san_type == SAN.URI and m.matcher.exact == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
    assert list(common.alpn_protocols) == list(tls.ALPN_IN_MESH)


def test_san_matcher_types():
    kinds = [m.san_type for m in tls.san_matchers(["spiffe://td/ns/a/sa/b", "10.0.0.1", "::1", "api.example.com"])]
    assert kinds == [SAN.URI, SAN.IP_ADDRESS, SAN.IP_ADDRESS, SAN.DNS]


def test_istio_mutual_sni():
    assert tls.istio_mutual_sni("reviews.default.svc.cluster.local", 9080) == "outbound_.9080_._.reviews.default.svc.cluster.local"
    assert tls.istio_mutual_sni("r.ns.svc", 80, "v2") == "outbound_.80_.v2_.r.ns.svc"


def test_client_settings_disable_and_istio_mutual_give_none():
    assert tls.upstream_from_client_settings(None) is None
    assert tls.upstream_from_client_settings(ClientTLSSettings(mode="DISABLE")) is None
    assert tls.upstream_from_client_settings(ClientTLSSettings(mode="ISTIO_MUTUAL")) is None


def test_simple_with_ca_file_and_sans():
    s = ClientTLSSettings(mode="SIMPLE", ca_certificates="/etc/ca.pem", sni="httpbin.org", subject_alt_names=("httpbin.org",))
    ctx = tls.upstream_from_client_settings(s, alpn=("h2",))
    assert ctx.sni == "httpbin.org"
    common = ctx.common_tls_context
    assert not common.tls_certificate_sds_secret_configs
    combined = common.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "file-root:/etc/ca.pem"
    assert [m.matcher.exact for m in combined.default_validation_context.match_typed_subject_alt_names] == ["httpbin.org"]
    assert list(common.alpn_protocols) == ["h2"]


def test_simple_without_ca_uses_system_roots():
    ctx = tls.upstream_from_client_settings(ClientTLSSettings(mode="SIMPLE"), default_sni="x.example.com")
    assert ctx.sni == "x.example.com"
    assert ctx.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name == "file-root:system"


def test_mutual_with_files():
    s = ClientTLSSettings(mode="MUTUAL", client_certificate="/c.pem", private_key="/k.pem", ca_certificates="/ca.pem")
    common = tls.upstream_from_client_settings(s).common_tls_context
    assert [x.name for x in common.tls_certificate_sds_secret_configs] == ["file-cert:/c.pem~/k.pem"]
    assert _sds_cluster(common.tls_certificate_sds_secret_configs[0]) == SDS_CLUSTER
    assert common.combined_validation_context.validation_context_sds_secret_config.name == "file-root:/ca.pem"


def test_credential_name_over_ads():
    common = tls.upstream_from_client_settings(ClientTLSSettings(mode="MUTUAL", credential_name="client-cred")).common_tls_context
    cert = common.tls_certificate_sds_secret_configs[0]
    assert cert.name == "kubernetes://client-cred" and cert.sds_config.HasField("ads")
    root = common.combined_validation_context.validation_context_sds_secret_config
    assert root.name == "kubernetes://client-cred-cacert" and root.sds_config.HasField("ads")
    simple = tls.upstream_from_client_settings(ClientTLSSettings(mode="SIMPLE", credential_name="c")).common_tls_context
    assert not simple.tls_certificate_sds_secret_configs
    assert simple.combined_validation_context.validation_context_sds_secret_config.name == "kubernetes://c-cacert"


def test_insecure_skip_verify_drops_validation():
    ctx = tls.upstream_from_client_settings(ClientTLSSettings(mode="SIMPLE", insecure_skip_verify=True, subject_alt_names=("a",)))
    assert ctx.common_tls_context.WhichOneof("validation_context_type") is None


def test_transport_socket_wraps_context():
    sock = tls.transport_socket(tls.upstream_istio_mutual("sni", []))
    assert sock.name == "envoy.transport_sockets.tls"
    out = tls_pb2.UpstreamTlsContext()
    assert sock.typed_config.Unpack(out) and out.sni == "sni"
