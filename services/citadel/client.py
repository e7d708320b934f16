"""A citadel client: CreateCertificate (with a bearer token, or over mTLS with the
caller's current certificate) and GetTrustBundle. Used by the certificate manager
and `isthmus cert request`. It runs on the in-house gRPC client
(shared/service/grpc_client.py): the sidecar's agent holds one, and grpcio's memory
and threads stay out of every sidecar. Failures raise `grpc_client.RpcError`.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from isthmus.citadel.pki.bundle import TrustBundle
from isthmus.shared.protos import ca_pb2, citadel_pb2
from isthmus.shared.service.grpc_client import Channel, mtls_context

TokenSource = Callable[[], str]
CREATE = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
GET_BUNDLE = "/isthmus.citadel.v1.TrustBundleService/GetTrustBundle"


class CitadelClient:
    def __init__(self, address: str, *, token: TokenSource | None = None, mtls_address: str | None = None,
                 server_name: str | None = None, timeout: float = 5.0):
        self.address = address
        self.token = token
        self.mtls_address = mtls_address
        self.server_name = server_name  # SAN to expect from the mTLS listener (default: its host)
        self.timeout = timeout
        self._channel = Channel(address, connect_timeout=timeout)

    async def wait_connected(self, timeout: float) -> None:
        """Wait until citadel's plaintext listener accepts a connection (e.g. after a restart)."""
        await asyncio.wait_for(self._channel.connect(), timeout)

    async def close(self) -> None:
        await self._channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token().strip()}"),) if self.token else ()

    async def create_certificate(self, csr_pem: str, ttl: int = 0) -> list[str]:
        """Token authentication over the plaintext listener."""
        resp = await self._channel.unary(CREATE, ca_pb2.IstioCertificateRequest(csr=csr_pem, validity_duration=ttl),
                                         ca_pb2.IstioCertificateResponse, metadata=self._metadata(),
                                         timeout=self.timeout)
        return list(resp.cert_chain)

    async def renew_with_certificate(self, csr_pem: str, ttl: int, *, key_pem: bytes, chain_pem: bytes,
                                     roots_pem: bytes) -> list[str]:
        """mTLS authentication with the caller's current certificate (no token needed)."""
        if not self.mtls_address:
            raise ValueError("citadel client: no mTLS address configured")
        channel = Channel(self.mtls_address, tls=mtls_context(chain_pem, key_pem, roots_pem),
                          server_name=self.server_name, connect_timeout=self.timeout)
        try:
            resp = await channel.unary(CREATE, ca_pb2.IstioCertificateRequest(csr=csr_pem, validity_duration=ttl),
                                       ca_pb2.IstioCertificateResponse, timeout=self.timeout)
        finally:
            await channel.close()
        return list(resp.cert_chain)

    async def trust_bundle(self) -> TrustBundle:
        resp = await self._channel.unary(GET_BUNDLE, citadel_pb2.GetTrustBundleRequest(), citadel_pb2.TrustBundle,
                                         timeout=self.timeout)
        return TrustBundle(resp.trust_domain, tuple(resp.root_certs))
