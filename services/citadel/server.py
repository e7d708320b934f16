"""The CA's gRPC shell, as Istio's `security/pkg/server/ca/server.go`: authenticate →
check the CSR → sign → return the chain (leaf first, root last). Plus the trust bundle.

Everything it decides is in authn/ and pki/; this maps outcomes onto gRPC status
codes and metrics.
"""
from __future__ import annotations

import time
from typing import NoReturn

import grpc

from isthmus.citadel.authn import Authenticator, Credentials, authenticate, bearer_from_metadata
from isthmus.citadel.errors import Rejected, Unauthenticated
from isthmus.citadel.metrics import CitadelMetrics
from isthmus.citadel.pki.authority import CertificateAuthority
from isthmus.citadel.pki.csr import check_csr
from isthmus.citadel.pki.policy import clamp_ttl
from isthmus.shared.logging import get_logger
from isthmus.shared.protos import ca_pb2, ca_pb2_grpc, citadel_pb2, citadel_pb2_grpc

log = get_logger(__name__)

_CODES = {Rejected.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
          Rejected.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED}


def credentials_from_context(context: grpc.aio.ServicerContext) -> Credentials:
    bearer = bearer_from_metadata(context.invocation_metadata() or ())
    peer = (context.auth_context() or {}).get("x509_pem_cert")
    return Credentials(bearer=bearer, peer_cert_pem=peer[0] if peer else None)


class CertificateService(ca_pb2_grpc.IstioCertificateServiceServicer):
    def __init__(self, authority: CertificateAuthority, authenticators: list[Authenticator],
                 metrics: CitadelMetrics):
        self.authority = authority
        self.authenticators = authenticators
        self.metrics = metrics

    async def CreateCertificate(self, request: ca_pb2.IstioCertificateRequest,
                                context: grpc.aio.ServicerContext) -> ca_pb2.IstioCertificateResponse:
        try:
            caller = await authenticate(self.authenticators, credentials_from_context(context))
        except Unauthenticated as exc:
            await self._refuse(context, grpc.StatusCode.UNAUTHENTICATED, exc.reason, str(exc))
        started = time.perf_counter()
        try:
            csr = check_csr(request.csr, caller.identity)
            ttl = clamp_ttl(request.validity_duration, self.authority.policy)
            chain = self.authority.sign_workload(csr, caller.identity, ttl)
        except Rejected as exc:
            await self._refuse(context, _CODES[exc.code], exc.reason, str(exc), caller=caller.identity.uri)
        self.metrics.sign_seconds.observe(time.perf_counter() - started)
        self.metrics.signed.labels(caller.method).inc()
        log.info("certificate issued", identity=caller.identity.uri, auth=caller.method, ttl=ttl)
        return ca_pb2.IstioCertificateResponse(
            cert_chain=chain, root_cert=ca_pb2.Roots(ca_cert=list(self.authority.bundle.roots))
        )

    async def _refuse(self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, reason: str,
                      message: str, **fields: str) -> NoReturn:
        self.metrics.rejected.labels(reason).inc()
        log.info("certificate request refused", code=code.name, reason=reason, message=message, **fields)
        await context.abort(code, message)


class TrustBundleService(citadel_pb2_grpc.TrustBundleServiceServicer):
    def __init__(self, authority: CertificateAuthority):
        self.authority = authority

    async def GetTrustBundle(self, request: citadel_pb2.GetTrustBundleRequest,
                             context: grpc.aio.ServicerContext) -> citadel_pb2.TrustBundle:
        bundle = self.authority.bundle
        return citadel_pb2.TrustBundle(trust_domain=bundle.trust_domain, root_certs=list(bundle.roots),
                                       version=bundle.version)
