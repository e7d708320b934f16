"""A Gateway server's TLS settings → Envoy DownstreamTlsContext (Istio's BuildListenerTLSContext).

SIMPLE: the server certificate from `credentialName` (SDS `kubernetes://NAME` over ADS,
served by pilot from a Secret in the gateway's namespace), or from files through the
agent (`file-cert:CERT~KEY`). MUTUAL: also require a client certificate validated by
`kubernetes://NAME-cacert` (or `caCertificates` files); OPTIONAL_MUTUAL: the same
validation, but a certificate is only requested. ISTIO_MUTUAL: the workload certificate
and trust bundle from the agent (SDS `default` / `ROOTCA`), client certificate required.
ALPN h2 + http/1.1 (Istio's ALPNHttp; a TLS-terminating TCP server in ISTIO_MUTUAL also
offers istio-peer-exchange); minimum TLS 1.2 unless the server says otherwise.
"""
from __future__ import annotations

from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from isthmus.pilot.translate.naming import SDS_DEFAULT, SDS_ROOTCA
from isthmus.pilot.translate.tls import ads_sds_secret, credential_sds_name, san_matchers, sds_secret
from isthmus.shared.config.types import ServerTLSSettings

ALPN_HTTP = ("h2", "http/1.1")
ALPN_DOWNSTREAM_WITH_MXC = ("istio-peer-exchange", "h2", "http/1.1")
VERSIONS = {
    "TLS_AUTO": common_pb2.TlsParameters.TLS_AUTO,
    "TLSV1_0": common_pb2.TlsParameters.TLSv1_0,
    "TLSV1_1": common_pb2.TlsParameters.TLSv1_1,
    "TLSV1_2": common_pb2.TlsParameters.TLSv1_2,
    "TLSV1_3": common_pb2.TlsParameters.TLSv1_3,
}
REQUIRE_CLIENT_CERT = ("MUTUAL", "ISTIO_MUTUAL")
VALIDATE_CLIENT_CERT = ("MUTUAL", "OPTIONAL_MUTUAL")


def _params(tls: ServerTLSSettings) -> common_pb2.TlsParameters:
    params = common_pb2.TlsParameters(
        tls_minimum_protocol_version=VERSIONS.get(tls.min_protocol_version or "TLSV1_2", common_pb2.TlsParameters.TLSv1_2),
        tls_maximum_protocol_version=VERSIONS.get(tls.max_protocol_version or "TLSV1_3", common_pb2.TlsParameters.TLSv1_3),
    )
    params.cipher_suites.extend(tls.cipher_suites)
    params.ecdh_curves.extend(tls.ecdh_curves)
    return params


def _credential_names(tls: ServerTLSSettings) -> list[str]:
    return [n for n in (tls.credential_names or ((tls.credential_name,) if tls.credential_name else ())) if n]


def _validation(tls: ServerTLSSettings, common: tls_pb2.CommonTlsContext, credentials: list[str]) -> None:
    """Client-certificate validation: the CA over SDS plus any SAN / SPKI / hash pins."""
    default = common_pb2.CertificateValidationContext(match_typed_subject_alt_names=san_matchers(tls.subject_alt_names))
    default.verify_certificate_spki.extend(tls.verify_certificate_spki)
    default.verify_certificate_hash.extend(tls.verify_certificate_hash)
    if tls.ca_cert_credential_name:
        root = ads_sds_secret(credential_sds_name(tls.ca_cert_credential_name, ca=True))
    elif credentials:
        root = ads_sds_secret(credential_sds_name(credentials[0], ca=True))
    elif tls.ca_certificates:
        root = sds_secret(f"file-root:{tls.ca_certificates}")
    else:
        return
    if tls.ca_crl and not credentials:
        default.crl.filename = tls.ca_crl
    common.combined_validation_context.CopyFrom(tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
        default_validation_context=default, validation_context_sds_secret_config=root,
    ))


def server_tls_context(tls: ServerTLSSettings, tcp_termination: bool = False) -> tls_pb2.DownstreamTlsContext:
    """The TLS a gateway server terminates (never called for PASSTHROUGH / AUTO_PASSTHROUGH)."""
    mode = tls.mode or "SIMPLE"
    alpn = ALPN_DOWNSTREAM_WITH_MXC if mode == "ISTIO_MUTUAL" and tcp_termination else ALPN_HTTP
    common = tls_pb2.CommonTlsContext(tls_params=_params(tls), alpn_protocols=list(alpn))
    if mode == "ISTIO_MUTUAL":
        common.tls_certificate_sds_secret_configs.append(sds_secret(SDS_DEFAULT))
        default = common_pb2.CertificateValidationContext(match_typed_subject_alt_names=san_matchers(tls.subject_alt_names))
        common.combined_validation_context.CopyFrom(tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
            default_validation_context=default, validation_context_sds_secret_config=sds_secret(SDS_ROOTCA),
        ))
    else:
        credentials = _credential_names(tls)
        if credentials:
            common.tls_certificate_sds_secret_configs.extend(
                ads_sds_secret(credential_sds_name(name)) for name in credentials
            )
        elif tls.server_certificate and tls.private_key:
            common.tls_certificate_sds_secret_configs.append(
                sds_secret(f"file-cert:{tls.server_certificate}~{tls.private_key}")
            )
        if mode in VALIDATE_CLIENT_CERT:
            _validation(tls, common, credentials)
    ctx = tls_pb2.DownstreamTlsContext(common_tls_context=common)
    ctx.require_client_certificate.value = mode in REQUIRE_CLIENT_CERT
    return ctx
