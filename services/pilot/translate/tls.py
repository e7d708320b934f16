"""Envoy TLS contexts for mesh mTLS and DestinationRule/Gateway TLS, as Istio builds them.

Pure builders over plain arguments: `downstream_tls_context` (listeners' mTLS
termination) and `upstream_istio_mutual` / `upstream_from_client_settings` (clusters).
Workload certificates and the trust bundle always come over SDS from the agent's
`sds-grpc` bootstrap cluster (`default` and `ROOTCA`); certificate files named in a
DestinationRule become the agent's `file-cert:`/`file-root:` SDS resources, and a
`credentialName` becomes `kubernetes://NAME` fetched over ADS — both as Istio does.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Sequence

from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, duration_pb2

from isthmus.pilot.translate.naming import SDS_CLUSTER, SDS_DEFAULT, SDS_ROOTCA

TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
RAW_BUFFER_TRANSPORT_SOCKET = "envoy.transport_sockets.raw_buffer"

# Istio's ALPN sets (pilot/pkg/networking/util): mesh mTLS advertises "istio" so the
# server side can tell a sidecar from a plain TLS client.
ALPN_IN_MESH = ("istio-peer-exchange", "istio")
ALPN_IN_MESH_H2 = ("istio-peer-exchange", "istio", "h2")
ALPN_H2_ONLY = ("h2",)
ALPN_DOWNSTREAM = ("istio-peer-exchange", "h2", "http/1.1")


def sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    """An SDS reference to the node agent's `sds-grpc` cluster (Istio's ConstructSdsSecretConfig)."""
    return secret_pb2.SdsSecretConfig(
        name=name,
        sds_config=config_source_pb2.ConfigSource(
            initial_fetch_timeout=duration_pb2.Duration(seconds=0),
            resource_api_version=config_source_pb2.ApiVersion.V3,
            api_config_source=config_source_pb2.ApiConfigSource(
                api_type=config_source_pb2.ApiConfigSource.GRPC,
                transport_api_version=config_source_pb2.ApiVersion.V3,
                set_node_on_first_message_only=True,
                grpc_services=[
                    grpc_service_pb2.GrpcService(
                        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER)
                    )
                ],
            ),
        ),
    )


def ads_sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    """An SDS reference served by pilot over ADS (credentialName secrets)."""
    return secret_pb2.SdsSecretConfig(
        name=name,
        sds_config=config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            resource_api_version=config_source_pb2.ApiVersion.V3,
        ),
    )


def credential_sds_name(credential_name: str, ca: bool = False) -> str:
    """`credentialName: foo` → `kubernetes://foo` (cert) / `kubernetes://foo-cacert` (CA)."""
    name = credential_name if "://" in credential_name else f"kubernetes://{credential_name}"
    return f"{name}-cacert" if ca else name


def _tls_params() -> common_pb2.TlsParameters:
    return common_pb2.TlsParameters(
        tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2,
        tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
    )


def san_matchers(subject_alt_names: Iterable[str]) -> list[common_pb2.SubjectAltNameMatcher]:
    """Exact SAN matchers, typed as Envoy wants: spiffe:// → URI, an IP → IP_ADDRESS, else DNS."""
    out = []
    for san in subject_alt_names:
        if "://" in san:
            kind = common_pb2.SubjectAltNameMatcher.URI
        else:
            try:
                ipaddress.ip_address(san)
                kind = common_pb2.SubjectAltNameMatcher.IP_ADDRESS
            except ValueError:
                kind = common_pb2.SubjectAltNameMatcher.DNS
        out.append(common_pb2.SubjectAltNameMatcher(san_type=kind, matcher=string_pb2.StringMatcher(exact=san)))
    return out


def _combined_validation(root_secret: secret_pb2.SdsSecretConfig, subject_alt_names: Sequence[str]):
    return tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
        default_validation_context=common_pb2.CertificateValidationContext(
            match_typed_subject_alt_names=san_matchers(subject_alt_names)
        ),
        validation_context_sds_secret_config=root_secret,
    )


def downstream_tls_context(require_client_cert: bool, alpn: tuple[str, ...] = ALPN_DOWNSTREAM) -> tls_pb2.DownstreamTlsContext:
    """Server-side mesh TLS: the workload cert from SDS `default`, advertising `alpn`.

    With `require_client_cert` (STRICT/PERMISSIVE mTLS on inbound) the peer must present
    a certificate chaining to SDS `ROOTCA`; no SAN check here — authorization policies
    decide on the peer identity, as in Istio. Without it (a plain TLS server) no
    validation context is set, so clients without a mesh certificate can connect.
    """
    common = tls_pb2.CommonTlsContext(
        tls_params=_tls_params(),
        alpn_protocols=list(alpn),
        tls_certificate_sds_secret_configs=[sds_secret(SDS_DEFAULT)],
    )
    if require_client_cert:
        common.combined_validation_context.CopyFrom(_combined_validation(sds_secret(SDS_ROOTCA), ()))
    ctx = tls_pb2.DownstreamTlsContext(common_tls_context=common)
    ctx.require_client_certificate.value = require_client_cert
    return ctx


def upstream_istio_mutual(sni: str, subject_alt_names: list[str], alpn: tuple[str, ...] = ALPN_IN_MESH) -> tls_pb2.UpstreamTlsContext:
    """Client-side mesh mTLS (ISTIO_MUTUAL and auto-mTLS): present SDS `default`, verify
    the server against SDS `ROOTCA` and `subject_alt_names` (the endpoints' SPIFFE ids;
    empty = any mesh identity). `sni` is Istio's `outbound_.PORT_.SUBSET_.HOST`."""
    return tls_pb2.UpstreamTlsContext(
        sni=sni,
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=_tls_params(),
            alpn_protocols=list(alpn),
            tls_certificate_sds_secret_configs=[sds_secret(SDS_DEFAULT)],
            combined_validation_context=_combined_validation(sds_secret(SDS_ROOTCA), subject_alt_names),
        ),
    )


def upstream_from_client_settings(tls: Any, default_sni: str = "", alpn: tuple[str, ...] = ()) -> tls_pb2.UpstreamTlsContext | None:
    """DestinationRule `ClientTLSSettings` in SIMPLE or MUTUAL mode → UpstreamTlsContext.

    `credentialName` wins over files (secrets over ADS, `-cacert` for the CA); files go
    through the agent's SDS as `file-cert:CERT~KEY` / `file-root:CA` (`file-root:system`
    without caCertificates, as Istio). `insecureSkipVerify` drops validation. Returns None for DISABLE/unset; ISTIO_MUTUAL is the caller's job
    (it needs the endpoints' identities).
    """
    mode = (tls.mode or "DISABLE") if tls is not None else "DISABLE"
    if mode not in ("SIMPLE", "MUTUAL"):
        return None
    common = tls_pb2.CommonTlsContext(tls_params=_tls_params(), alpn_protocols=list(alpn))
    sans = list(tls.subject_alt_names or ())
    if tls.credential_name:
        if mode == "MUTUAL":
            common.tls_certificate_sds_secret_configs.append(ads_sds_secret(credential_sds_name(tls.credential_name)))
        root = ads_sds_secret(credential_sds_name(tls.credential_name, ca=True))
    else:
        if mode == "MUTUAL" and tls.client_certificate and tls.private_key:
            common.tls_certificate_sds_secret_configs.append(
                sds_secret(f"file-cert:{tls.client_certificate}~{tls.private_key}")
            )
        # No caCertificates: the system trust store, served by the agent as `file-root:system`.
        root = sds_secret(f"file-root:{tls.ca_certificates or 'system'}")
    if not tls.insecure_skip_verify:
        combined = _combined_validation(root, sans)
        if tls.ca_crl and not tls.credential_name:
            combined.default_validation_context.crl.filename = tls.ca_crl
        common.combined_validation_context.CopyFrom(combined)
    return tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=tls.sni or default_sni)


def transport_socket(ctx: tls_pb2.UpstreamTlsContext | tls_pb2.DownstreamTlsContext) -> base_pb2.TransportSocket:
    """Wrap a TLS context as Envoy's `envoy.transport_sockets.tls` transport socket."""
    packed = any_pb2.Any()
    packed.Pack(ctx)
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=packed)


def istio_mutual_sni(host: str, port: int, subset: str = "") -> str:
    """Istio's mesh SNI: `outbound_.9080_.v1_.reviews.default.svc.cluster.local`."""
    return f"outbound_.{port}_.{subset}_.{host}"
