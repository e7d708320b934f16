"""SDS `Secret` → `SecretConfig`: a certificate (chain + key) or a validation context.

Istio's agent serves `default` (the workload certificate) and `ROOTCA` (the trust
bundle); credentialName secrets arrive over ADS as `kubernetes://NAME[-cacert]`.
"""
from __future__ import annotations

from dataclasses import dataclass

from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from isthmus.proxy.config.errors import Fields, Where
from isthmus.proxy.config.tls import CertificateConfig, ValidationConfig, certificate, validation

SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
SECRET = Fields(secret_pb2.Secret, {"name", "tls_certificate", "validation_context"})


@dataclass(frozen=True, slots=True)
class SecretConfig:
    name: str
    tls_certificate: CertificateConfig | None = None
    validation_context: ValidationConfig | None = None


def compile_secret(msg: secret_pb2.Secret) -> SecretConfig:
    where = Where(SECRET_TYPE_URL, msg.name)
    SECRET.check(msg, where)
    which = msg.WhichOneof("type")
    if which == "tls_certificate":
        return SecretConfig(msg.name, tls_certificate=certificate(msg.tls_certificate, where.at(which)))
    if which == "validation_context":
        return SecretConfig(msg.name, validation_context=validation(msg.validation_context, where.at(which)))
    raise where.invalid("a Secret needs tls_certificate or validation_context")
