"""Host health as Envoy models it: per-cause flags, and the coarse state the LB reads.

Contract: a host carries a set of `HealthFlag`s, each set and cleared by one owner
(EDS, outlier detection, active health checking). `coarse_health(flags)` folds them the
way Envoy's `Host::coarseHealth()` does: any FAILED_* flag → UNHEALTHY, else any
DEGRADED_* flag → DEGRADED, else HEALTHY. `eds_flags(status)` maps an EDS
`core.v3.HealthStatus` to the flags EDS owns: HEALTHY/UNKNOWN → none;
UNHEALTHY/DRAINING/TIMEOUT → FAILED_EDS_HEALTH; DEGRADED → DEGRADED_EDS_HEALTH.
"""
from __future__ import annotations

import enum

__all__ = [
    "HealthStatus",
    "HealthFlag",
    "HostHealth",
    "FAILED_FLAGS",
    "DEGRADED_FLAGS",
    "EDS_FLAGS",
    "eds_flags",
    "coarse_health",
]


class HealthStatus(enum.IntEnum):
    """`envoy.config.core.v3.HealthStatus`, same numbers as the proto enum."""

    UNKNOWN = 0
    HEALTHY = 1
    UNHEALTHY = 2
    DRAINING = 3
    TIMEOUT = 4
    DEGRADED = 5


class HealthFlag(enum.IntFlag):
    """Why a host is not (fully) healthy; one bit per cause, as Envoy's `Host::HealthFlag`."""

    NONE = 0
    FAILED_ACTIVE_HC = 1 << 0
    FAILED_OUTLIER_CHECK = 1 << 1
    FAILED_EDS_HEALTH = 1 << 2
    DEGRADED_ACTIVE_HC = 1 << 3
    DEGRADED_EDS_HEALTH = 1 << 4


class HostHealth(enum.Enum):
    """The coarse state load balancers act on."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


FAILED_FLAGS = HealthFlag.FAILED_ACTIVE_HC | HealthFlag.FAILED_OUTLIER_CHECK | HealthFlag.FAILED_EDS_HEALTH
DEGRADED_FLAGS = HealthFlag.DEGRADED_ACTIVE_HC | HealthFlag.DEGRADED_EDS_HEALTH
EDS_FLAGS = HealthFlag.FAILED_EDS_HEALTH | HealthFlag.DEGRADED_EDS_HEALTH

_EDS_TO_FLAGS = {
    HealthStatus.UNKNOWN: HealthFlag.NONE,
    HealthStatus.HEALTHY: HealthFlag.NONE,
    HealthStatus.UNHEALTHY: HealthFlag.FAILED_EDS_HEALTH,
    HealthStatus.DRAINING: HealthFlag.FAILED_EDS_HEALTH,
    HealthStatus.TIMEOUT: HealthFlag.FAILED_EDS_HEALTH,
    HealthStatus.DEGRADED: HealthFlag.DEGRADED_EDS_HEALTH,
}


def eds_flags(status: HealthStatus | int) -> HealthFlag:
    """The EDS-owned health flags for an endpoint's `health_status`.

    Unknown enum numbers (a newer control plane) count as UNKNOWN, i.e. healthy, which
    is what Envoy does for values it does not know.
    """
    try:
        return _EDS_TO_FLAGS[HealthStatus(status)]
    except ValueError:
        return HealthFlag.NONE


def coarse_health(flags: HealthFlag | int) -> HostHealth:
    """Fold per-cause flags into HEALTHY / DEGRADED / UNHEALTHY (failure wins)."""
    if flags & FAILED_FLAGS:
        return HostHealth.UNHEALTHY
    if flags & DEGRADED_FLAGS:
        return HostHealth.DEGRADED
    return HostHealth.HEALTHY
