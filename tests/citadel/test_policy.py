import pytest

from isthmus.citadel.errors import Rejected
from isthmus.citadel.pki.policy import DAY, HOUR, IssuancePolicy, clamp_ttl

POLICY = IssuancePolicy()


@pytest.mark.parametrize("requested, expected", [
    (0, 24 * HOUR),          # unspecified → default
    (1, 60),                 # below the minimum → 1 min
    (59, 60),
    (3600, 3600),
    (90 * DAY, 90 * DAY),
    (365 * DAY, 90 * DAY),   # above the maximum → 90 days
])
def test_clamp(requested, expected):
    assert clamp_ttl(requested, POLICY) == expected


def test_negative_is_invalid():
    with pytest.raises(Rejected, match="must not be negative") as info:
        clamp_ttl(-5, POLICY)
    assert (info.value.reason, info.value.code) == ("ttl_negative", "INVALID_ARGUMENT")


def test_policy_must_be_ordered():
    with pytest.raises(ValueError, match="min_ttl"):
        IssuancePolicy(min_ttl=7200, default_ttl=3600)
