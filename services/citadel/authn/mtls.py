"""Renewal over mTLS: a workload's current mesh certificate proves who it is.

The TLS layer has already verified the client chain against the trust bundle; this
checks what TLS cannot: validity on citadel's clock, and exactly one SPIFFE URI in
our trust domain.
"""
from __future__ import annotations

from cryptography import x509

from isthmus.citadel.authn import Caller, Credentials
from isthmus.citadel.clock import Clock, SystemClock
from isthmus.citadel.errors import Unauthenticated
from isthmus.citadel.pki.issue import spiffe_uris
from isthmus.citadel.spiffe import parse_spiffe_id


class PeerCertificateAuthenticator:
    name = "mTLS client certificate"

    def __init__(self, trust_domain: str, clock: Clock | None = None):
        self.trust_domain = trust_domain
        self.clock = clock or SystemClock()

    async def authenticate(self, creds: Credentials) -> Caller | None:
        if creds.peer_cert_pem is None:
            return None
        try:
            cert = x509.load_pem_x509_certificate(creds.peer_cert_pem)
        except ValueError as exc:
            raise Unauthenticated("peer_cert_invalid", f"client certificate unreadable ({exc})") from exc
        now = self.clock.time()
        if not cert.not_valid_before_utc.timestamp() <= now < cert.not_valid_after_utc.timestamp():
            raise Unauthenticated("peer_cert_expired", "client certificate is not currently valid; "
                                  "renew with a bearer token instead")
        uris = spiffe_uris(cert)
        if len(uris) != 1:
            raise Unauthenticated("peer_cert_invalid", f"client certificate must carry one SPIFFE URI (got {uris})")
        try:
            identity = parse_spiffe_id(uris[0])
        except ValueError as exc:
            raise Unauthenticated("peer_cert_invalid", f"client certificate: {exc}") from exc
        if identity.trust_domain != self.trust_domain:
            raise Unauthenticated("peer_cert_invalid",
                                  f"client certificate is from trust domain {identity.trust_domain}, "
                                  f"not {self.trust_domain}")
        return Caller(identity, "mtls", cert.issuer.rfc4514_string())
