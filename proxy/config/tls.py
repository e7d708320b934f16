"""TLS transport sockets → `DownstreamTls` / `UpstreamTls` (and the pieces SDS secrets share).

Certificates and trust come inline or by SDS name (`SecretRef`: name + where to fetch
it); SAN matchers are compiled; `combined_validation_context` keeps both the SDS
trust bundle and the inline checks, which Envoy merges at handshake time.
`transport_socket(...)` accepts `envoy.transport_sockets.tls` and `raw_buffer` only.
"""
from __future__ import annotations

from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from isthmus.proxy.config.common import ConfigSourceRef, DataSourceConfig, by_name, config_source, data_source, enum, unpack, wrapped
from isthmus.proxy.config.matchers import StringMatch, string_matcher
from isthmus.proxy.config.errors import Fields, Where

TRANSPORT_SOCKET = Fields(base_pb2.TransportSocket, {"name", "typed_config"})
COMMON = Fields(tls_pb2.CommonTlsContext, {
    "tls_params", "tls_certificates", "tls_certificate_sds_secret_configs", "validation_context",
    "validation_context_sds_secret_config", "combined_validation_context", "alpn_protocols",
})
COMBINED = Fields(tls_pb2.CommonTlsContext.CombinedCertificateValidationContext,
                  {"default_validation_context", "validation_context_sds_secret_config"})
PARAMS = Fields(common_pb2.TlsParameters, {"tls_minimum_protocol_version", "tls_maximum_protocol_version",
                                            "cipher_suites", "ecdh_curves"})
CERTIFICATE = Fields(common_pb2.TlsCertificate, {"certificate_chain", "private_key"},
                     {"ocsp_staple": "served only on request; the isthmus proxy does not staple"})
VALIDATION = Fields(common_pb2.CertificateValidationContext, {
    "trusted_ca", "verify_certificate_hash", "match_typed_subject_alt_names", "match_subject_alt_names", "crl",
    "allow_expired_certificate", "trust_chain_verification", "only_verify_leaf_cert_crl", "max_verify_depth",
})
SAN_MATCHER = Fields(common_pb2.SubjectAltNameMatcher, {"san_type", "matcher"})
SDS_CONFIG = Fields(secret_pb2.SdsSecretConfig, {"name", "sds_config"})
DOWNSTREAM = Fields(tls_pb2.DownstreamTlsContext, {"common_tls_context", "require_client_certificate", "require_sni"}, {
    "disable_stateless_session_resumption": "session resumption is a performance detail",
    "disable_stateful_session_resumption": "session resumption is a performance detail",
    "session_timeout": "session resumption is a performance detail",
    "full_scan_certs_on_sni_mismatch": "one certificate set per chain",
    "prefer_client_ciphers": "cipher preference order only",
})
UPSTREAM = Fields(tls_pb2.UpstreamTlsContext, {"common_tls_context", "sni", "auto_host_sni", "auto_sni_san_validation"},
                  {"max_session_keys": "session cache size", "enforce_rsa_key_usage": "no effect with mesh certificates"})
RAW_BUFFER = Fields(raw_buffer_pb2.RawBuffer, ())

TLS_VERSIONS = {common_pb2.TlsParameters.TLS_AUTO: "", common_pb2.TlsParameters.TLSv1_0: "TLSv1.0",
                common_pb2.TlsParameters.TLSv1_1: "TLSv1.1", common_pb2.TlsParameters.TLSv1_2: "TLSv1.2",
                common_pb2.TlsParameters.TLSv1_3: "TLSv1.3"}
SAN_TYPES = {common_pb2.SubjectAltNameMatcher.DNS: "dns", common_pb2.SubjectAltNameMatcher.URI: "uri",
             common_pb2.SubjectAltNameMatcher.EMAIL: "email", common_pb2.SubjectAltNameMatcher.IP_ADDRESS: "ip"}
TLS_SOCKETS = by_name(tls_pb2.UpstreamTlsContext, tls_pb2.DownstreamTlsContext, raw_buffer_pb2.RawBuffer)


@dataclass(frozen=True, slots=True)
class SecretRef:
    name: str
    source: ConfigSourceRef | None  # None: a static secret from the bootstrap


@dataclass(frozen=True, slots=True)
class CertificateConfig:
    chain: DataSourceConfig
    key: DataSourceConfig


@dataclass(frozen=True, slots=True)
class SanMatch:
    san_type: str  # dns | uri | email | ip | any
    match: StringMatch


@dataclass(frozen=True, slots=True)
class ValidationConfig:
    trusted_ca: DataSourceConfig | None = None
    san_matchers: tuple[SanMatch, ...] = ()  # any one must match; empty: no SAN check
    certificate_hashes: tuple[str, ...] = ()  # lower-case hex SHA-256, no colons
    crl: DataSourceConfig | None = None
    allow_expired: bool = False
    accept_untrusted: bool = False  # trust_chain_verification: ACCEPT_UNTRUSTED
    only_verify_leaf_crl: bool = False
    max_verify_depth: int | None = None


@dataclass(frozen=True, slots=True)
class CommonTls:
    certificates: tuple[CertificateConfig, ...] = ()
    certificate_sds: tuple[SecretRef, ...] = ()
    validation: ValidationConfig | None = None  # inline, or the default half of a combined context
    validation_sds: SecretRef | None = None
    alpn: tuple[str, ...] = ()
    min_version: str = ""  # "" = library default
    max_version: str = ""
    cipher_suites: tuple[str, ...] = ()
    ecdh_curves: tuple[str, ...] = ()

    def secret_names(self) -> tuple[SecretRef, ...]:
        return self.certificate_sds + ((self.validation_sds,) if self.validation_sds else ())


@dataclass(frozen=True, slots=True)
class DownstreamTls:
    common: CommonTls
    require_client_certificate: bool = False
    require_sni: bool = False


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    common: CommonTls
    sni: str = ""
    auto_host_sni: bool = False
    auto_sni_san_validation: bool = False


def sds_ref(msg: secret_pb2.SdsSecretConfig, where: Where) -> SecretRef:
    SDS_CONFIG.check(msg, where)
    if not msg.name:
        raise where.at("name").invalid("an SDS secret needs a name")
    source = config_source(msg.sds_config, where.at("sds_config")) if msg.HasField("sds_config") else None
    return SecretRef(msg.name, source)


def certificate(msg: common_pb2.TlsCertificate, where: Where) -> CertificateConfig:
    CERTIFICATE.check(msg, where)
    return CertificateConfig(data_source(msg.certificate_chain, where.at("certificate_chain")),
                             data_source(msg.private_key, where.at("private_key")))


def _san(msg: common_pb2.SubjectAltNameMatcher, where: Where) -> SanMatch:
    SAN_MATCHER.check(msg, where)
    kind = SAN_TYPES.get(msg.san_type)
    if kind is None:
        raise where.at("san_type").unsupported("only DNS, URI, EMAIL and IP_ADDRESS SAN matchers are supported")
    return SanMatch(kind, string_matcher(msg.matcher, where.at("matcher")))


def validation(msg: common_pb2.CertificateValidationContext, where: Where) -> ValidationConfig:
    VALIDATION.check(msg, where)
    sans = tuple(_san(m, where.at("match_typed_subject_alt_names").idx(i)) for i, m in enumerate(msg.match_typed_subject_alt_names))
    sans += tuple(SanMatch("any", string_matcher(m, where.at("match_subject_alt_names").idx(i)))
                  for i, m in enumerate(msg.match_subject_alt_names))
    untrusted = msg.trust_chain_verification == common_pb2.CertificateValidationContext.ACCEPT_UNTRUSTED
    return ValidationConfig(
        trusted_ca=data_source(msg.trusted_ca, where.at("trusted_ca")) if msg.HasField("trusted_ca") else None,
        san_matchers=sans,
        certificate_hashes=tuple(h.replace(":", "").lower() for h in msg.verify_certificate_hash),
        crl=data_source(msg.crl, where.at("crl")) if msg.HasField("crl") else None,
        allow_expired=msg.allow_expired_certificate,
        accept_untrusted=untrusted,
        only_verify_leaf_crl=msg.only_verify_leaf_cert_crl,
        max_verify_depth=wrapped(msg, "max_verify_depth", None),
    )


def common_tls(msg: tls_pb2.CommonTlsContext, where: Where) -> CommonTls:
    COMMON.check(msg, where)
    params = msg.tls_params
    PARAMS.check(params, where.at("tls_params"))
    val, val_sds = None, None
    which = msg.WhichOneof("validation_context_type")
    if which == "validation_context":
        val = validation(msg.validation_context, where.at("validation_context"))
    elif which == "validation_context_sds_secret_config":
        val_sds = sds_ref(msg.validation_context_sds_secret_config, where.at(which))
    elif which == "combined_validation_context":
        w = where.at(which)
        COMBINED.check(msg.combined_validation_context, w)
        val = validation(msg.combined_validation_context.default_validation_context, w.at("default_validation_context"))
        val_sds = sds_ref(msg.combined_validation_context.validation_context_sds_secret_config,
                          w.at("validation_context_sds_secret_config"))
    return CommonTls(
        certificates=tuple(certificate(c, where.at("tls_certificates").idx(i)) for i, c in enumerate(msg.tls_certificates)),
        certificate_sds=tuple(sds_ref(s, where.at("tls_certificate_sds_secret_configs").idx(i))
                              for i, s in enumerate(msg.tls_certificate_sds_secret_configs)),
        validation=val,
        validation_sds=val_sds,
        alpn=tuple(msg.alpn_protocols),
        min_version=enum(TLS_VERSIONS, params, "tls_minimum_protocol_version", where.at("tls_params")),
        max_version=enum(TLS_VERSIONS, params, "tls_maximum_protocol_version", where.at("tls_params")),
        cipher_suites=tuple(params.cipher_suites),
        ecdh_curves=tuple(params.ecdh_curves),
    )


def downstream_tls(msg: tls_pb2.DownstreamTlsContext, where: Where) -> DownstreamTls:
    DOWNSTREAM.check(msg, where)
    common = common_tls(msg.common_tls_context, where.at("common_tls_context"))
    if not common.certificates and not common.certificate_sds:
        raise where.at("common_tls_context").invalid("a TLS server needs a certificate (inline or SDS)")
    require = wrapped(msg, "require_client_certificate", False)
    if require and common.validation is None and common.validation_sds is None:
        raise where.at("require_client_certificate").invalid("requiring a client certificate needs a validation context")
    return DownstreamTls(common, require, msg.require_sni.value if msg.HasField("require_sni") else False)


def upstream_tls(msg: tls_pb2.UpstreamTlsContext, where: Where) -> UpstreamTls:
    UPSTREAM.check(msg, where)
    return UpstreamTls(common_tls(msg.common_tls_context, where.at("common_tls_context")), msg.sni,
                       msg.auto_host_sni, msg.auto_sni_san_validation)


def transport_socket(msg: base_pb2.TransportSocket, where: Where, upstream: bool) -> UpstreamTls | DownstreamTls | None:
    """A transport socket → its TLS config, or None for plaintext (raw_buffer)."""
    TRANSPORT_SOCKET.check(msg, where)
    cfg = unpack(msg.typed_config, where.at("typed_config"), TLS_SOCKETS)
    w = where.at("typed_config")
    if isinstance(cfg, raw_buffer_pb2.RawBuffer):
        RAW_BUFFER.check(cfg, w)
        return None
    if upstream and isinstance(cfg, tls_pb2.UpstreamTlsContext):
        return upstream_tls(cfg, w)
    if not upstream and isinstance(cfg, tls_pb2.DownstreamTlsContext):
        return downstream_tls(cfg, w)
    side = "a cluster needs UpstreamTlsContext" if upstream else "a filter chain needs DownstreamTlsContext"
    raise w.invalid(f"wrong TLS context type: {side}")

