"""Circuit breakers and the retry budget."""
from __future__ import annotations

import pytest

from isthmus.proxy.upstream.circuit import (
    ClusterCircuitBreakers, Resource, ResourceManager, RetryBudget, RoutingPriority, Thresholds,
)


def test_envoy_defaults():
    rm = ResourceManager()
    assert [rm.limit(k) for k in (Resource.CONNECTIONS, Resource.PENDING_REQUESTS, Resource.REQUESTS,
                                  Resource.RETRIES)] == [1024, 1024, 1024, 3]


@pytest.mark.parametrize("kind, stat", [
    (Resource.CONNECTIONS, "upstream_cx_overflow"),
    (Resource.PENDING_REQUESTS, "upstream_rq_pending_overflow"),
    (Resource.REQUESTS, "upstream_rq_pending_overflow"),  # Envoy counts max_requests here too
    (Resource.RETRIES, "upstream_rq_retry_overflow"),
])
def test_overflow_counts_and_release_reopens(kind, stat):
    rm = ResourceManager(Thresholds(max_connections=2, max_pending_requests=2, max_requests=2, max_retries=2))
    assert rm.try_acquire(kind) and rm.try_acquire(kind)
    assert not rm.try_acquire(kind)
    assert rm.overflows[stat] == 1 and rm.remaining(kind) == 0
    assert rm.gauges()[{"connections": "cx_open", "pending_requests": "rq_pending_open",
                        "requests": "rq_open", "retries": "rq_retry_open"}[kind.value]] == 1
    rm.release(kind)
    assert rm.try_acquire(kind)
    assert rm.overflows[stat] == 1


def test_release_without_acquire_is_a_bug():
    with pytest.raises(RuntimeError, match="release without acquire"):
        ResourceManager().release(Resource.RETRIES)


def test_zero_limit_refuses_everything():
    rm = ResourceManager(Thresholds(max_retries=0))
    assert not rm.try_acquire(Resource.RETRIES)


def test_retry_budget_scales_with_outstanding_requests():
    rm = ResourceManager(Thresholds(max_retries=1000, retry_budget=RetryBudget(budget_percent=25, min_retry_concurrency=3)))
    assert rm.limit(Resource.RETRIES) == 3  # floor: min_retry_concurrency (max_retries ignored)
    for _ in range(80):
        rm.try_acquire(Resource.REQUESTS)
    for _ in range(20):
        rm.try_acquire(Resource.PENDING_REQUESTS)
    assert rm.limit(Resource.RETRIES) == 25  # 25% of (80 active + 20 pending)
    for _ in range(25):
        assert rm.try_acquire(Resource.RETRIES)
    assert not rm.try_acquire(Resource.RETRIES)
    assert rm.overflows["upstream_rq_retry_overflow"] == 1


def test_retry_budget_defaults_are_envoys():
    assert RetryBudget() == RetryBudget(budget_percent=20.0, min_retry_concurrency=3)
    with pytest.raises(ValueError, match="budget_percent"):
        RetryBudget(budget_percent=120)


def test_cluster_has_one_manager_per_priority():
    cb = ClusterCircuitBreakers([Thresholds(priority=RoutingPriority.HIGH, max_connections=1)])
    high, default = cb.for_priority(RoutingPriority.HIGH), cb.for_priority()
    assert high.limit(Resource.CONNECTIONS) == 1 and default.limit(Resource.CONNECTIONS) == 1024
    high.try_acquire(Resource.CONNECTIONS)
    high.try_acquire(Resource.CONNECTIONS)
    default.try_acquire(Resource.CONNECTIONS)
    assert cb.overflows()["upstream_cx_overflow"] == 1


def test_negative_threshold_names_the_field():
    with pytest.raises(ValueError, match="circuit_breakers.thresholds.max_requests must be >= 0"):
        Thresholds(max_requests=-1)
