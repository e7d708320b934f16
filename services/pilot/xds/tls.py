"""mTLS for the ADS port: rotating server credentials and the peer's SPIFFE identity.

`server_credentials(source)` requires a client certificate and re-reads
`source() -> (cert_chain_pem, key_pem, roots_pem)` on every handshake, so rotated
certificates (citadel's workload cert manager) apply to new connections without a
restart (gRPC calls it from its own threads: keep it cheap, e.g. reading the
current cert of citadel's manager). `peer_identity(context)` is None on plaintext, else the one SPIFFE URI SAN
of the verified client certificate (PermissionError when there is not exactly one).
"""
from __future__ import annotations

import threading
from typing import Callable

import grpc
from cryptography import x509

from isthmus.shared.logging import get_logger

log = get_logger(__name__)

CertSource = Callable[[], tuple[bytes, bytes, bytes]]  # (cert_chain_pem, key_pem, roots_pem)


def _as_bytes(v: bytes | str) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)


class _RotatingCerts:
    """The fetcher gRPC calls before each handshake: a new configuration when the source changed."""

    def __init__(self, source: CertSource):
        self._source = source
        self._lock = threading.Lock()
        self._current = self._read()

    def _read(self) -> tuple[bytes, bytes, bytes]:
        chain, key, roots = self._source()
        return _as_bytes(chain), _as_bytes(key), _as_bytes(roots)

    def config(self) -> grpc.ServerCertificateConfiguration:
        chain, key, roots = self._current
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            latest = self._read()
        except Exception:  # keep serving the current certificate
            log.exception("xDS TLS: certificate source failed; keeping the current certificate")
            return None
        with self._lock:
            if latest == self._current:
                return None
            self._current = latest
        log.info("xDS TLS: serving a rotated certificate")
        return self.config()


def server_credentials(source: CertSource) -> grpc.ServerCredentials:
    rotating = _RotatingCerts(source)
    return grpc.dynamic_ssl_server_credentials(rotating.config(), rotating, require_client_authentication=True)


def peer_identity(context: grpc.aio.ServicerContext) -> str | None:
    auth = context.auth_context() or {}
    if b"ssl" not in auth.get("transport_security_type", []):
        return None
    pems = auth.get("x509_pem_cert") or []
    if not pems:
        raise PermissionError("xDS over TLS needs a client certificate carrying a SPIFFE identity")
    cert = x509.load_pem_x509_certificate(pems[0])
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("spiffe://")]
    except x509.ExtensionNotFound:
        uris = []
    if len(uris) != 1:
        raise PermissionError(f"client certificate must carry exactly one SPIFFE URI SAN (got {uris or 'none'})")
    return uris[0]
