"""The signing authority: current key material + issuance policy + clock → chains.

`sign_workload` turns a checked CSR into `leaf, intermediates..., root` (PEM, as
Istio's CA returns it). `refresh()` swaps in new material when the files behind the
source change (root rotation, a new plug-in intermediate) without a restart.
"""
from __future__ import annotations

from cryptography import x509

from isthmus.citadel.clock import Clock, SystemClock
from isthmus.citadel.pki.bundle import TrustBundle
from isthmus.citadel.pki.issue import cert_pem, issue_leaf
from isthmus.citadel.pki.keys import PrivateKey
from isthmus.citadel.pki.policy import IssuancePolicy, allowed_dns_names
from isthmus.citadel.pki.store import CaMaterial, CaSource
from isthmus.citadel.spiffe import SpiffeId
from isthmus.shared.logging import get_logger

log = get_logger(__name__)


class CertificateAuthority:
    def __init__(self, source: CaSource, policy: IssuancePolicy, clock: Clock | None = None):
        self.source = source
        self.policy = policy
        self.clock = clock or SystemClock()
        self._material = source.load(self.clock.time())  # may create the files
        self._stamp = source.stamp()
        self._chain_pems = self._material.chain_pems

    @property
    def material(self) -> CaMaterial:
        return self._material

    @property
    def bundle(self) -> TrustBundle:
        return self._material.bundle

    def refresh(self) -> bool:
        """Reload if the source's files changed; keep the old material if the new is broken."""
        stamp = self.source.stamp()
        if stamp == self._stamp:
            return False
        try:
            material = self.source.load(self.clock.time())
        except (ValueError, OSError) as exc:
            log.warning("ca material changed but does not load; keeping the current one", error=str(exc))
            return False
        self._material, self._chain_pems, self._stamp = material, material.chain_pems, stamp
        log.info("ca material reloaded", source=material.description, bundle_version=material.bundle.version,
                 roots=len(material.bundle.roots))
        return True

    def sign_workload(self, csr: x509.CertificateSigningRequest, identity: SpiffeId, ttl: int) -> list[str]:
        """Sign an already-checked CSR for `identity`; returns PEMs leaf first, root last.
        The CSR's DNS names are copied only where the policy grants them to `identity`."""
        allowed = allowed_dns_names(identity)
        dns: tuple[str, ...] = ()
        if allowed:
            try:
                san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                dns = tuple(dict.fromkeys(d for d in san.get_values_for_type(x509.DNSName) if d in allowed))
            except x509.ExtensionNotFound:
                pass
        return self._issue(csr.public_key(), ttl, uris=(identity.uri,), dns_names=dns)

    def issue_serving(self, key: PrivateKey, ttl: int, *, uris: tuple[str, ...] = (),
                      dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> list[str]:
        """A certificate for citadel's own TLS listener (DNS/IP SANs allowed here only)."""
        return self._issue(key.public_key(), ttl, uris=uris, dns_names=dns_names, ips=ips)

    def _issue(self, public_key, ttl: int, **sans) -> list[str]:
        material, chain = self._material, self._chain_pems
        now = self.clock.time()
        leaf = issue_leaf(public_key, material.signing_key, material.signing_cert,
                          not_before=now - min(self.policy.backdate, ttl), not_after=now + ttl, **sans)
        return [cert_pem(leaf), *chain]
