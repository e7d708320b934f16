"""Circuit breakers: per-cluster, per-routing-priority resource limits, as Envoy's.

Contract: a `ResourceManager` counts open connections, pending (queued) requests,
active requests, active retries and connection pools against `Thresholds`.
`try_acquire(kind)` takes one unit or, at the limit, counts an overflow and returns
False; `release(kind)` gives one back. Overflow counters carry Envoy's stat names
(`upstream_cx_overflow`, `upstream_rq_pending_overflow` — also bumped by the
max_requests breaker, as in Envoy —, `upstream_rq_retry_overflow`,
`upstream_cx_pool_overflow`); the router answers a refused request with 503 and the
response flag UO. With a `RetryBudget`, the retry limit is
max(min_retry_concurrency, budget_percent% of (active + pending requests)) and
`max_retries` is ignored.
"""
from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable

__all__ = [
    "Resource",
    "RoutingPriority",
    "RetryBudget",
    "Thresholds",
    "ResourceManager",
    "ClusterCircuitBreakers",
    "OVERFLOW_STAT",
    "UPSTREAM_OVERFLOW",
]


class Resource(enum.Enum):
    CONNECTIONS = "connections"
    PENDING_REQUESTS = "pending_requests"
    REQUESTS = "requests"
    RETRIES = "retries"
    CONNECTION_POOLS = "connection_pools"


class RoutingPriority(enum.IntEnum):
    """`config.core.v3.RoutingPriority`."""

    DEFAULT = 0
    HIGH = 1


OVERFLOW_STAT = {
    Resource.CONNECTIONS: "upstream_cx_overflow",
    Resource.PENDING_REQUESTS: "upstream_rq_pending_overflow",
    Resource.REQUESTS: "upstream_rq_pending_overflow",
    Resource.RETRIES: "upstream_rq_retry_overflow",
    Resource.CONNECTION_POOLS: "upstream_cx_pool_overflow",
}

# circuit_breakers.<priority>.<gauge>: 1 while the breaker is open (at its limit).
_OPEN_GAUGE = {
    Resource.CONNECTIONS: "cx_open",
    Resource.PENDING_REQUESTS: "rq_pending_open",
    Resource.REQUESTS: "rq_open",
    Resource.RETRIES: "rq_retry_open",
    Resource.CONNECTION_POOLS: "cx_pool_open",
}
_REMAINING_GAUGE = {
    Resource.CONNECTIONS: "remaining_cx",
    Resource.PENDING_REQUESTS: "remaining_pending",
    Resource.REQUESTS: "remaining_rq",
    Resource.RETRIES: "remaining_retries",
    Resource.CONNECTION_POOLS: "remaining_cx_pools",
}

UNLIMITED = 2**63 - 1
UPSTREAM_OVERFLOW = "UO"  # response flag when a breaker refuses a request (503)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryBudget:
    """`CircuitBreakers.Thresholds.RetryBudget` with Envoy's defaults."""

    budget_percent: float = 20.0
    min_retry_concurrency: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.budget_percent <= 100.0:
            raise ValueError(f"retry_budget.budget_percent must be within [0, 100] (got {self.budget_percent})")
        if self.min_retry_concurrency < 0:
            raise ValueError(f"retry_budget.min_retry_concurrency must be >= 0 (got {self.min_retry_concurrency})")


@dataclasses.dataclass(frozen=True, slots=True)
class Thresholds:
    """`CircuitBreakers.Thresholds` with Envoy's defaults (1024/1024/1024/3, pools unlimited)."""

    priority: RoutingPriority = RoutingPriority.DEFAULT
    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3
    retry_budget: RetryBudget | None = None
    max_connection_pools: int = UNLIMITED

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_pending_requests", "max_requests", "max_retries", "max_connection_pools"):
            if getattr(self, name) < 0:
                raise ValueError(f"circuit_breakers.thresholds.{name} must be >= 0 (got {getattr(self, name)})")


# Resource → the ResourceManager attribute counting it (its limit is "max_" + that).
_FIELD = {kind: kind.value for kind in Resource}


class ResourceManager:
    """Counters and limits for one cluster at one routing priority (see module docstring).

    The counts are plain int attributes named after the resource (`connections`,
    `pending_requests`, `requests`, `retries`, `connection_pools`) with their limits in
    `max_<name>`: the pool books' per-request path reads and bumps them directly
    (no enum hashing); everything else goes through the `Resource`-keyed methods."""

    __slots__ = ("thresholds", "overflows", "connections", "pending_requests", "requests", "retries",
                 "connection_pools", "max_connections", "max_pending_requests", "max_requests", "max_retries",
                 "max_connection_pools")

    def __init__(self, thresholds: Thresholds = Thresholds()) -> None:
        self.thresholds = thresholds
        self.connections = self.pending_requests = self.requests = self.retries = self.connection_pools = 0
        self.max_connections = thresholds.max_connections
        self.max_pending_requests = thresholds.max_pending_requests
        self.max_requests = thresholds.max_requests
        self.max_retries = thresholds.max_retries
        self.max_connection_pools = thresholds.max_connection_pools
        self.overflows = {name: 0 for name in OVERFLOW_STAT.values()}

    def limit(self, kind: Resource) -> int:
        budget = self.thresholds.retry_budget
        if kind is Resource.RETRIES and budget is not None:
            outstanding = self.requests + self.pending_requests
            return max(budget.min_retry_concurrency, int(budget.budget_percent * outstanding / 100.0))
        return getattr(self, "max_" + _FIELD[kind])

    def count(self, kind: Resource) -> int:
        return getattr(self, _FIELD[kind])

    def remaining(self, kind: Resource) -> int:
        return max(0, self.limit(kind) - self.count(kind))

    def can_acquire(self, kind: Resource) -> bool:
        return self.count(kind) < self.limit(kind)

    def try_acquire(self, kind: Resource) -> bool:
        """Take one unit; at the limit count the overflow and return False (→ 503 UO)."""
        field = _FIELD[kind]
        count = getattr(self, field)
        if count < self.limit(kind):
            setattr(self, field, count + 1)
            return True
        self.overflows[OVERFLOW_STAT[kind]] += 1
        return False

    def acquire(self, kind: Resource) -> None:
        """Take one unit regardless of the limit (a pool's first connection, as Envoy allows)."""
        field = _FIELD[kind]
        setattr(self, field, getattr(self, field) + 1)

    def record_overflow(self, kind: Resource) -> None:
        self.overflows[OVERFLOW_STAT[kind]] += 1

    def release(self, kind: Resource) -> None:
        field = _FIELD[kind]
        count = getattr(self, field)
        if count <= 0:
            raise RuntimeError(f"circuit breaker {kind.value}: release without acquire")
        setattr(self, field, count - 1)

    # -- the pool books' per-request calls: REQUESTS and PENDING_REQUESTS, no enum --------
    def try_acquire_request(self) -> bool:
        if self.requests < self.max_requests:
            self.requests += 1
            return True
        self.overflows["upstream_rq_pending_overflow"] += 1  # OVERFLOW_STAT[REQUESTS], as Envoy
        return False

    def release_request(self) -> None:
        if self.requests <= 0:
            raise RuntimeError("circuit breaker requests: release without acquire")
        self.requests -= 1

    def gauges(self) -> dict[str, int]:
        """`circuit_breakers.<priority>.*` gauges: open flags and remaining counts."""
        out: dict[str, int] = {}
        for kind in Resource:
            out[_OPEN_GAUGE[kind]] = 0 if self.can_acquire(kind) else 1
            out[_REMAINING_GAUGE[kind]] = self.remaining(kind)
        return out

    def __repr__(self) -> str:
        used = ", ".join(f"{k.value}={self.count(k)}/{self.limit(k)}" for k in Resource if k is not Resource.CONNECTION_POOLS)
        return f"ResourceManager({self.thresholds.priority.name}: {used})"


class ClusterCircuitBreakers:
    """One `ResourceManager` per routing priority of a cluster (missing → Envoy defaults)."""

    __slots__ = ("_managers",)

    def __init__(self, thresholds: Iterable[Thresholds] = ()) -> None:
        given = {t.priority: t for t in thresholds}
        self._managers = {p: ResourceManager(given.get(p, Thresholds(priority=p))) for p in RoutingPriority}

    def for_priority(self, priority: RoutingPriority = RoutingPriority.DEFAULT) -> ResourceManager:
        return self._managers[priority]

    def overflows(self) -> dict[str, int]:
        """Cluster overflow counters, summed over priorities."""
        total = {name: 0 for name in OVERFLOW_STAT.values()}
        for rm in self._managers.values():
            for name, value in rm.overflows.items():
                total[name] += value
        return total
