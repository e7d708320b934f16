"""Envoy's retry decisions: conditions, limits, breaker overflow, back-off."""
from __future__ import annotations

from isthmus.proxy.config.route_action import RetryPolicyConfig
from isthmus.proxy.filters.retry import RetryState
from isthmus.proxy.upstream.circuit import ResourceManager, Thresholds


def state(on: str, n: int = 2, codes=(), max_retries: int = 3) -> RetryState:
    policy = RetryPolicyConfig(retry_on=frozenset(on.split(",")), num_retries=n, retriable_status_codes=frozenset(codes))
    return RetryState(policy, ResourceManager(Thresholds(max_retries=max_retries)))


def test_response_conditions():
    assert state("5xx").retriable_response(500, [])
    assert not state("gateway-error").retriable_response(500, [])
    assert state("gateway-error").retriable_response(503, [])
    assert state("retriable-4xx").retriable_response(409, []) and not state("retriable-4xx").retriable_response(404, [])
    assert state("retriable-status-codes", codes=(418,)).retriable_response(418, [])
    assert state("unavailable").retriable_response(200, [(b"grpc-status", b"14")])
    assert not state("unavailable").retriable_response(200, [(b"grpc-status", b"13")])


def test_reset_conditions():
    assert state("connect-failure").retriable_reset("connection_failure")
    assert not state("connect-failure").retriable_reset("remote_reset")
    assert state("reset").retriable_reset("remote_reset") and state("5xx").retriable_reset("per_try_timeout", True)
    assert state("refused-stream").retriable_reset("refused_stream")
    assert not state("5xx").retriable_reset("overflow")


def test_limit_and_overflow():
    s = state("5xx", n=2)
    assert [s.consume(), s.consume(), s.consume()] == ["retry", "retry", "limit"]
    s.release_all()
    s = state("5xx", n=5, max_retries=1)
    assert [s.consume(), s.consume()] == ["retry", "overflow"]


def test_backoff_is_jittered_exponential_and_capped():
    s = state("5xx", n=10)
    for n in range(1, 8):
        s.count = n
        upper = min(0.025 * ((1 << n) - 1), 0.25)
        assert all(0 <= s.backoff() <= upper for _ in range(50))
