"""A citadel client: CreateCertificate (with a bearer token, or over mTLS with the
caller's current certificate) and GetTrustBundle. Used by the certificate manager
and `isthmus cert request`.
"""
from __future__ import annotations

import asyncio
from typing import Callable

import grpc

from isthmus.citadel.pki.bundle import TrustBundle
from isthmus.shared.protos import ca_pb2, ca_pb2_grpc, citadel_pb2, citadel_pb2_grpc

TokenSource = Callable[[], str]
# Reconnect quickly after a citadel restart (gRPC's default backoff grows to 2 minutes).
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 5000)]


class CitadelClient:
    def __init__(self, address: str, *, token: TokenSource | None = None, mtls_address: str | None = None,
                 server_name: str | None = None, timeout: float = 5.0):
        self.address = address
        self.token = token
        self.mtls_address = mtls_address
        self.server_name = server_name  # SAN to expect from the mTLS listener (default: its host)
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the plaintext channel is connected (e.g. after citadel restarted)."""
        await asyncio.wait_for(self._channel.channel_ready(), timeout)

    async def close(self) -> None:
        await self._channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token().strip()}"),) if self.token else ()

    async def create_certificate(self, csr_pem: str, ttl: int = 0) -> list[str]:
        """Token authentication over the plaintext listener."""
        stub = ca_pb2_grpc.IstioCertificateServiceStub(self._channel)
        resp = await stub.CreateCertificate(ca_pb2.IstioCertificateRequest(csr=csr_pem, validity_duration=ttl),
                                            metadata=self._metadata(), timeout=self.timeout)
        return list(resp.cert_chain)

    async def renew_with_certificate(self, csr_pem: str, ttl: int, *, key_pem: bytes, chain_pem: bytes,
                                     roots_pem: bytes) -> list[str]:
        """mTLS authentication with the caller's current certificate (no token needed)."""
        if not self.mtls_address:
            raise ValueError("citadel client: no mTLS address configured")
        creds = grpc.ssl_channel_credentials(roots_pem, key_pem, chain_pem)
        options = list(CHANNEL_OPTIONS)
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        async with grpc.aio.secure_channel(self.mtls_address, creds, options=options) as channel:
            stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
            resp = await stub.CreateCertificate(
                ca_pb2.IstioCertificateRequest(csr=csr_pem, validity_duration=ttl), timeout=self.timeout)
        return list(resp.cert_chain)

    async def trust_bundle(self) -> TrustBundle:
        stub = citadel_pb2_grpc.TrustBundleServiceStub(self._channel)
        resp = await stub.GetTrustBundle(citadel_pb2.GetTrustBundleRequest(), timeout=self.timeout)
        return TrustBundle(resp.trust_domain, tuple(resp.root_certs))
