"""What citadel issues: lifetime limits and the clock-skew backdate, as one frozen value.

`clamp_ttl` is the pure rule: 0 → default, otherwise clamped to [min, max];
a negative request is a caller error.
"""
from __future__ import annotations

from dataclasses import dataclass

from isthmus.citadel.errors import Rejected

MINUTE = 60
HOUR = 3600
DAY = 86400


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
