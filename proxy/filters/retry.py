"""Envoy's retry decisions for one routed request (RetryStateImpl).

`retriable_response(status, headers)` and `retriable_reset(kind, timeout)` say
whether an outcome matches `retry_on`; `consume()` then says whether a retry may
happen: "retry", "limit" (num_retries used up → flag URX) or "overflow" (the
cluster's retry breaker / budget is full → upstream_rq_retry_overflow, flag UO).
`backoff()` is Envoy's fully jittered exponential back-off: uniform in
[0, min(base × (2^n − 1), max)) for the n-th retry (defaults 25 ms / 250 ms).
Conditions: 5xx, gateway-error (502/503/504), reset, connect-failure,
retriable-4xx (409), refused-stream, retriable-status-codes, retriable-headers, and
gRPC cancelled/deadline-exceeded/internal/resource-exhausted/unavailable read from
`grpc-status` of a trailers-only response. A per-try timeout counts as a reset
(retried by 5xx, gateway-error and reset). Overflows are never retried.
"""
from __future__ import annotations

import random

from isthmus.proxy.config.route_action import RetryPolicyConfig
from isthmus.proxy.upstream.circuit import Resource, ResourceManager

_GRPC = {"cancelled": b"1", "deadline-exceeded": b"4", "internal": b"13", "resource-exhausted": b"8", "unavailable": b"14"}
_RESETS_ANY = frozenset({"5xx", "gateway-error", "reset"})


class RetryState:
    __slots__ = ("policy", "on", "remaining", "breaker", "held", "count", "grpc_codes", "_header_getter")

    def __init__(self, policy: RetryPolicyConfig, breaker: ResourceManager) -> None:
        self.policy = policy
        self.on = policy.retry_on
        self.remaining = policy.num_retries
        self.breaker = breaker
        self.held = 0  # retry resources held (released as attempts end)
        self.count = 0
        self.grpc_codes = frozenset(code for name, code in _GRPC.items() if name in self.on)

    def retriable_response(self, status: int, headers: list) -> bool:
        on = self.on
        if status >= 500:
            if "5xx" in on:
                return True
            if status in (502, 503, 504) and "gateway-error" in on:
                return True
        if status == 409 and "retriable-4xx" in on:
            return True
        if "retriable-status-codes" in on and status in self.policy.retriable_status_codes:
            return True
        if self.grpc_codes:
            for k, v in headers:
                if k == b"grpc-status":
                    if v in self.grpc_codes:
                        return True
                    break
        if self.policy.retriable_headers:
            d = {}
            for k, v in headers:
                d.setdefault(k.decode("latin-1"), v.decode("latin-1"))
            for m in self.policy.retriable_headers:
                if m.matches(d.get(m.name)):
                    return True
        return False

    def retriable_reset(self, kind: str, timeout: bool = False) -> bool:
        """kind: connection_failure | connect_timeout | connection_termination |
        remote_reset | refused_stream | protocol_error | overflow | per_try_timeout."""
        if kind == "overflow":
            return False
        on = self.on
        if on & _RESETS_ANY:
            return True
        if kind == "refused_stream" and "refused-stream" in on:
            return True
        if kind in ("connection_failure", "connect_timeout") and "connect-failure" in on:
            return True
        return False

    def consume(self) -> str:
        if self.remaining <= 0:
            return "limit"
        if not self.breaker.try_acquire(Resource.RETRIES):
            return "overflow"
        self.remaining -= 1
        self.held += 1
        self.count += 1
        return "retry"

    def release_one(self) -> None:
        if self.held:
            self.held -= 1
            try:
                self.breaker.release(Resource.RETRIES)
            except RuntimeError:
                pass

    def release_all(self) -> None:
        while self.held:
            self.release_one()

    def backoff(self) -> float:
        upper = min(self.policy.back_off_base * ((1 << self.count) - 1), self.policy.back_off_max)
        return random.uniform(0.0, upper)
