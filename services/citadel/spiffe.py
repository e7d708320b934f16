"""SPIFFE workload identities: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.

Pure parse/format helpers (Istio's identity shape). `parse_spiffe_id` raises ValueError
with a message naming the rule the string broke.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SCHEME = "spiffe://"
# Kubernetes names: DNS-1123 labels (namespace) and subdomains (service account).
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")


@dataclass(frozen=True, order=True)
class SpiffeId:
    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        if not _TRUST_DOMAIN.match(self.trust_domain or ""):
            raise ValueError(f"trust domain {self.trust_domain!r}: must be lowercase letters, digits, '.', '-', '_'")
        if len(self.namespace) > 63 or not _LABEL.match(self.namespace or ""):
            raise ValueError(f"namespace {self.namespace!r}: must be a DNS-1123 label")
        if len(self.service_account) > 253 or not _SUBDOMAIN.match(self.service_account or ""):
            raise ValueError(f"service account {self.service_account!r}: must be a DNS-1123 subdomain")

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def __str__(self) -> str:
        return self.uri


def parse_spiffe_id(uri: str) -> SpiffeId:
    """`spiffe://td/ns/NS/sa/SA` → SpiffeId; ValueError names what is wrong."""
    if not uri.startswith(SCHEME):
        raise ValueError(f"{uri!r} is not a SPIFFE id: must start with {SCHEME}")
    rest = uri[len(SCHEME):]
    if any(c in rest for c in "?#"):
        raise ValueError(f"{uri!r}: a SPIFFE id has no query or fragment")
    parts = rest.split("/")
    if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
        raise ValueError(f"{uri!r}: must have the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>")
    return SpiffeId(parts[0], parts[2], parts[4])
