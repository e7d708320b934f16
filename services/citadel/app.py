"""One citadel process, assembled: CA material, authenticators, gRPC listeners, health.

`CitadelApp(config).start()` binds a plaintext listener (token authentication) and,
optionally, an mTLS listener (client certificate required: renewal with the current
mesh certificate, or a token over TLS). Tests run it in-process on ephemeral ports.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from isthmus.citadel.authn import Authenticator
from isthmus.citadel.authn.jwks import FileJwks, HttpJwks, JwksSource
from isthmus.citadel.authn.jwt_token import CA_AUDIENCE, JwtAuthenticator, TrustedIssuer
from isthmus.citadel.authn.mesh_tokens import JWKS_FILE, MeshTokenKey, mesh_issuer
from isthmus.citadel.authn.mtls import PeerCertificateAuthenticator
from isthmus.citadel.clock import Clock, SystemClock
from isthmus.citadel.metrics import CitadelMetrics
from isthmus.citadel.pki.authority import CertificateAuthority
from isthmus.citadel.pki.keys import KeyType, key_pem
from isthmus.citadel.pki.policy import DAY, HOUR, MINUTE, IssuancePolicy
from isthmus.citadel.pki.store import CaSource, PluginSource, SelfSignedSource, resolve_trust_domain
from isthmus.citadel.server import CertificateService, TrustBundleService
from isthmus.shared.logging import get_logger
from isthmus.shared.protos import ca_pb2_grpc, citadel_pb2_grpc

log = get_logger(__name__)

CA_SERVICE = "istio.v1.auth.IstioCertificateService"
SERVING_DNS = ("localhost", "citadel", "citadel.istio-system.svc", "istiod.istio-system.svc")
SERVING_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class ExternalIssuer:
    """A token issuer trusted besides the mesh's own, e.g. a Kubernetes API server:
    `jwks` is an http(s) URL or a JWKS file path."""

    issuer: str
    jwks: str
    audiences: tuple[str, ...] = (CA_AUDIENCE,)
    ca_file: str | None = None
    bearer_file: str | None = None

    def source(self) -> JwksSource:
        if self.jwks.startswith(("http://", "https://")):
            return HttpJwks(self.jwks, ca_file=self.ca_file, bearer_file=self.bearer_file)
        return FileJwks(Path(self.jwks))


@dataclass(frozen=True)
class CitadelConfig:
    data_dir: Path
    listen: str = "127.0.0.1:8060"
    mtls_listen: str | None = None
    trust_domain: str | None = None
    key_type: KeyType = KeyType.EC_P256
    cacerts: Path | None = None
    default_ttl: int = 24 * HOUR
    min_ttl: int = MINUTE
    max_ttl: int = 90 * DAY
    reload_interval: float = 5.0
    external_issuers: tuple[ExternalIssuer, ...] = field(default_factory=tuple)


def ca_source(config: CitadelConfig, trust_domain: str) -> CaSource:
    cacerts = config.cacerts
    if cacerts is None and (config.data_dir / "cacerts" / "ca-key.pem").exists():
        cacerts = config.data_dir / "cacerts"
    if cacerts is not None:
        return PluginSource(cacerts, trust_domain)
    return SelfSignedSource(config.data_dir, trust_domain, config.key_type)


class CitadelApp:
    def __init__(self, config: CitadelConfig, *, clock: Clock | None = None,
                 metrics: CitadelMetrics | None = None):
        self.config = config
        self.clock = clock or SystemClock()
        self.metrics = metrics or CitadelMetrics()
        data_dir = Path(config.data_dir)
        self.trust_domain = resolve_trust_domain(data_dir, config.trust_domain)
        self.policy = IssuancePolicy(self.trust_domain, config.default_ttl, config.min_ttl, config.max_ttl)
        self.authority = CertificateAuthority(ca_source(config, self.trust_domain), self.policy, self.clock)
        self.token_key = MeshTokenKey.load_or_create(data_dir)
        issuers = [TrustedIssuer(mesh_issuer(self.trust_domain), FileJwks(data_dir / JWKS_FILE), self.trust_domain)]
        issuers += [TrustedIssuer(e.issuer, e.source(), self.trust_domain, e.audiences)
                    for e in config.external_issuers]
        self.jwt = JwtAuthenticator(issuers, self.clock)
        self.health = health.aio.HealthServicer()
        self.port: int | None = None
        self.mtls_port: int | None = None
        self._servers: list[grpc.aio.Server] = []
        self._reload_task: asyncio.Task | None = None
        self._serving_state: tuple[tuple[str, str], float] = (("", ""), 0.0)

    def _server(self, authenticators: list[Authenticator]) -> grpc.aio.Server:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        ca_pb2_grpc.add_IstioCertificateServiceServicer_to_server(
            CertificateService(self.authority, authenticators, self.metrics), server)
        citadel_pb2_grpc.add_TrustBundleServiceServicer_to_server(TrustBundleService(self.authority), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        return server

    async def start(self) -> None:
        plain = self._server([self.jwt])
        self.port = plain.add_insecure_port(self.config.listen)
        if not self.port:
            raise OSError(f"citadel: cannot listen on {self.config.listen}")
        self._servers.append(plain)
        if self.config.mtls_listen:
            secure = self._server([PeerCertificateAuthenticator(self.trust_domain, self.clock), self.jwt])
            creds = grpc.dynamic_ssl_server_credentials(self._serving_config(), self._fetch_serving_config,
                                                        require_client_authentication=True)
            self.mtls_port = secure.add_secure_port(self.config.mtls_listen, creds)
            if not self.mtls_port:
                raise OSError(f"citadel: cannot listen on {self.config.mtls_listen}")
            self._servers.append(secure)
        for server in self._servers:
            await server.start()
        for name in ("", CA_SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._reload_task = asyncio.create_task(self._reload_loop(), name="citadel-reload")
        log.info("citadel serving", listen=f"{self.config.listen.rsplit(':', 1)[0]}:{self.port}",
                 mtls_port=self.mtls_port, trust_domain=self.trust_domain,
                 ca=self.authority.material.description, bundle_version=self.authority.bundle.version)

    async def stop(self, grace: float | None = 2.0) -> None:
        if self._reload_task:
            self._reload_task.cancel()
            await asyncio.gather(self._reload_task, return_exceptions=True)
        await self.health.enter_graceful_shutdown()
        await asyncio.gather(*(s.stop(grace) for s in self._servers))
        self._servers.clear()

    async def wait_closed(self) -> None:
        await asyncio.gather(*(s.wait_for_termination() for s in self._servers))

    def refresh(self) -> bool:
        return self.authority.refresh()

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload_interval)
            self.authority.refresh()

    # The mTLS listener's own certificate: re-issued when the CA material changes or
    # half its lifetime has passed (gRPC asks before every handshake).
    def _serving_key(self) -> tuple[str, str]:
        return self.authority.bundle.version, self.authority.material.chain_pems[0]

    def _serving_config(self) -> grpc.ServerCertificateConfiguration:
        key = KeyType.EC_P256.generate()
        ttl = self.policy.default_ttl
        chain = self.authority.issue_serving(
            key, ttl, uris=(f"spiffe://{self.trust_domain}/ns/istio-system/sa/citadel",),
            dns_names=SERVING_DNS, ips=SERVING_IPS)
        self._serving_state = (self._serving_key(), self.clock.time() + ttl / 2)
        return grpc.ssl_server_certificate_configuration(
            [(key_pem(key), "".join(chain[:-1]).encode())],  # leaf + intermediates; peers hold the root
            root_certificates=self.authority.bundle.pem().encode())

    def _fetch_serving_config(self) -> grpc.ServerCertificateConfiguration | None:
        issued_for, renew_at = self._serving_state
        if issued_for == self._serving_key() and self.clock.time() < renew_at:
            return None
        return self._serving_config()
