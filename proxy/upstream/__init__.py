"""Upstream bookkeeping for the proxy, pure: no sockets, injected clock and randomness.

    endpoints  Host / HostSet: hosts from EDS, state kept across updates
    health     EDS health status → health flags → healthy / degraded / unhealthy
    lb         choose(context) -> Host | None: RoundRobin, LeastRequest, Random,
               priority and panic handling (None → 503 UH)
    hash_lb    RingHash, Maglev (XXH64, tables identical to Envoy's)
    hashing    xxh64, hash policies → request hash (+ Set-Cookie to add)
    circuit    ResourceManager: circuit breakers and retry budget (overflow → 503 UO)
    pool       ConnectionPool.handle(event, now) -> actions, httpcore-style books
    outlier    OutlierDetector: consecutive errors, success rate, ejection sweep

The runtime (proxy/runtime) owns the sockets and the timers and feeds these modules
events and the current time; nothing here blocks or reads a clock.
"""
from __future__ import annotations

from .circuit import ClusterCircuitBreakers, Resource, ResourceManager, RetryBudget, RoutingPriority, Thresholds
from .endpoints import Endpoint, Host, HostSet, Locality
from .hash_lb import Maglev, RingHash
from .health import HealthFlag, HealthStatus, HostHealth
from .lb import ChooseContext, LeastRequest, LoadBalancer, Random, RoundRobin
from .outlier import OutlierConfig, OutlierDetector, OutlierEvent, Result
from .pool import ConnectionPool, PoolProtocol, PoolSettings

__all__ = [
    "ChooseContext", "ClusterCircuitBreakers", "ConnectionPool", "Endpoint", "HealthFlag", "HealthStatus",
    "Host", "HostHealth", "HostSet", "LeastRequest", "LoadBalancer", "Locality", "Maglev", "OutlierConfig",
    "OutlierDetector", "OutlierEvent", "PoolProtocol", "PoolSettings", "Random", "Resource", "ResourceManager",
    "Result", "RetryBudget", "RingHash", "RoundRobin", "RoutingPriority", "Thresholds",
]
