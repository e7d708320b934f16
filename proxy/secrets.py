"""`AgentSecrets`: the TLS secrets the python data plane reads (`runtime.tls.SecretProvider`).

The agent serves, as Istio's does: `default` (the workload certificate: chain + key) and
`ROOTCA` (the trust bundle) from the certificate manager, `file-cert:CERT~KEY` and
`file-root:PATH` (`file-root:system`: the system trust store) for DestinationRule
certificate files; every other name comes from pilot over ADS (`Snapshot.secrets`,
handed in with `update`). Agent names win over ADS ones. `version` increases on every
change (new certificate or bundle, changed ADS secrets), and `get` returns the same
object until then, so the runtime rebuilds its SSL contexts only when needed. Files are
named, not read (the runtime reads them) and not watched.
"""
from __future__ import annotations

import os
from typing import Mapping, Protocol

from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from isthmus.proxy.config.common import DataSourceConfig
from isthmus.proxy.config.secrets import SecretConfig
from isthmus.proxy.config.tls import CertificateConfig, ValidationConfig
from isthmus.shared.file_secrets import is_file_secret, parse_file_secret

WORKLOAD = "default"
ROOTS = "ROOTCA"


class CertSource(Protocol):
    """What the agent's certificate manager offers (citadel's `CertificateManager`)."""

    def current(self): ...  # -> WorkloadCert | None (cert_chain_pem, key_pem, roots_pem)

    @property
    def version(self) -> int: ...


def _file_secret(name: str) -> SecretConfig | None:
    f = parse_file_secret(name)
    if f is None:
        return None
    if f.cert:
        return SecretConfig(name, tls_certificate=CertificateConfig(DataSourceConfig(filename=f.cert),
                                                                    DataSourceConfig(filename=f.key)))
    return SecretConfig(name, validation_context=ValidationConfig(trusted_ca=DataSourceConfig(filename=f.ca)))


class AgentSecrets:
    def __init__(self, certs: CertSource):
        self.certs = certs
        self._cert_version = -1
        self._local: dict[str, SecretConfig] = {}
        self._ads: Mapping[str, SecretConfig] = {}
        self._files: dict[str, SecretConfig | None] = {}
        self._version = 0

    def _sync(self) -> None:
        v = self.certs.version
        if v == self._cert_version:
            return
        self._cert_version = v
        cert = self.certs.current()
        self._local = {} if cert is None else {
            WORKLOAD: SecretConfig(WORKLOAD, tls_certificate=CertificateConfig(
                DataSourceConfig(inline=cert.cert_chain_pem), DataSourceConfig(inline=cert.key_pem))),
            ROOTS: SecretConfig(ROOTS, validation_context=ValidationConfig(
                trusted_ca=DataSourceConfig(inline=cert.roots_pem))),
        }
        self._version += 1

    # ---- SecretProvider ------------------------------------------------------------
    def get(self, name: str) -> SecretConfig | None:
        self._sync()
        if name in (WORKLOAD, ROOTS):
            return self._local.get(name)
        if is_file_secret(name):
            if name not in self._files:
                self._files[name] = _file_secret(name)
            return self._files[name]
        return self._ads.get(name)

    @property
    def version(self) -> int:
        self._sync()
        return self._version

    # ---- the agent's side -------------------------------------------------------------
    def update(self, ads_secrets: Mapping[str, SecretConfig]) -> bool:
        """Take the secrets of a new snapshot; True (and a new version) if any changed."""
        if dict(ads_secrets) == dict(self._ads):
            return False
        self._ads = dict(ads_secrets)
        self._version += 1
        return True

    def has_local(self, name: str) -> bool:
        """Whether the agent itself serves `name` now (named files must exist)."""
        if name in (WORKLOAD, ROOTS):
            self._sync()
            return name in self._local
        if is_file_secret(name):
            secret = self.get(name)
            return secret is not None and all(os.path.exists(src.filename) for src in _sources(secret))
        return False

    def local_protos(self) -> dict[str, secret_pb2.Secret]:
        """The agent-served secrets as Envoy protos (for /config_dump; keys are not redacted here)."""
        self._sync()
        return {name: _to_proto(s) for name, s in self._local.items()}


def _sources(s: SecretConfig) -> list[DataSourceConfig]:
    if s.tls_certificate is not None:
        return [s.tls_certificate.chain, s.tls_certificate.key]
    if s.validation_context is not None and s.validation_context.trusted_ca is not None:
        return [s.validation_context.trusted_ca]
    return []


def _data(src: DataSourceConfig) -> dict:
    return {"filename": src.filename} if src.filename else {"inline_bytes": src.inline or b""}


def _to_proto(s: SecretConfig) -> secret_pb2.Secret:
    if s.tls_certificate is not None:
        return secret_pb2.Secret(name=s.name, tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=_data(s.tls_certificate.chain), private_key=_data(s.tls_certificate.key)))
    ca = s.validation_context.trusted_ca if s.validation_context else None
    return secret_pb2.Secret(name=s.name, validation_context=common_pb2.CertificateValidationContext(
        trusted_ca=_data(ca) if ca else None))
