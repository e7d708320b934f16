"""The trust bundle: every root a workload should accept, current signing root first.

During a root rotation it holds the old and the new root, so certificates issued under
either verify. Expired roots drop out; `version` changes whenever the set does.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the sidecar reads bundles without loading cryptography
    from cryptography import x509


@dataclass(frozen=True)
class TrustBundle:
    trust_domain: str
    roots: tuple[str, ...]  # PEM, one certificate each

    @property
    def version(self) -> str:
        return hashlib.sha256("".join(self.roots).encode()).hexdigest()[:16]

    def pem(self) -> str:
        return "".join(self.roots)


def make_bundle(trust_domain: str, roots: list[x509.Certificate], now: float) -> TrustBundle:
    """Deduplicate (by fingerprint) and drop roots that have expired at `now`."""
    from cryptography.hazmat.primitives import hashes

    from isthmus.citadel.pki.issue import cert_pem, utc

    seen: set[bytes] = set()
    kept: list[str] = []
    for root in roots:
        fp = root.fingerprint(hashes.SHA256())
        if fp in seen or root.not_valid_after_utc <= utc(now):
            continue
        seen.add(fp)
        kept.append(cert_pem(root))
    return TrustBundle(trust_domain, tuple(kept))
