"""What citadel issues: lifetime limits and the clock-skew backdate, as one frozen value,
and which DNS names an identity may carry besides its SPIFFE URI.

`clamp_ttl` is the pure rule: 0 → default, otherwise clamped to [min, max];
a negative request is a caller error. `allowed_dns_names(identity)` is empty for every
workload; only the control plane (ns=istio-system, sa=istiod) may also name its
service hostnames, as Istio's istiod certificate does, so proxies can verify pilot by
hostname (`istiod.istio-system.svc`) and that name proves the istiod identity.
"""
from __future__ import annotations

from dataclasses import dataclass

from isthmus.citadel.errors import Rejected
from isthmus.citadel.spiffe import SpiffeId

MINUTE = 60
HOUR = 3600
DAY = 86400

CONTROL_PLANE_NAMESPACE = "istio-system"
CONTROL_PLANE_SERVICE_ACCOUNT = "istiod"
# The DNS SANs of istiod's certificate; proxies dial pilot as `istiod.istio-system.svc`.
CONTROL_PLANE_DNS_NAMES = ("istiod.istio-system.svc", "istiod.istio-system.svc.cluster.local", "istiod")


@dataclass(frozen=True)
class IssuancePolicy:
    trust_domain: str = "cluster.local"
    default_ttl: int = 24 * HOUR
    min_ttl: int = MINUTE
    max_ttl: int = 90 * DAY
    # NotBefore is set this far in the past, so a peer whose clock is slightly
    # behind still accepts a certificate it just received.
    backdate: int = MINUTE

    def __post_init__(self) -> None:
        if not 0 < self.min_ttl <= self.default_ttl <= self.max_ttl:
            raise ValueError(
                f"issuance policy: need 0 < min_ttl ({self.min_ttl}) <= default_ttl "
                f"({self.default_ttl}) <= max_ttl ({self.max_ttl})")
        if self.backdate < 0:
            raise ValueError(f"issuance policy: backdate must be >= 0 (got {self.backdate})")


def clamp_ttl(requested: int, policy: IssuancePolicy) -> int:
    """Lifetime in seconds for a request asking for `requested` (0 = unspecified)."""
    if requested < 0:
        raise Rejected("ttl_negative", f"validity_duration: must not be negative (got {requested})")
    if requested == 0:
        return policy.default_ttl
    return max(policy.min_ttl, min(policy.max_ttl, requested))


def allowed_dns_names(identity: SpiffeId) -> frozenset[str]:
    """DNS SANs a certificate for `identity` may carry (none, except istiod's hostnames)."""
    if (identity.namespace, identity.service_account) == (CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT):
        return frozenset(CONTROL_PLANE_DNS_NAMES)
    return frozenset()
