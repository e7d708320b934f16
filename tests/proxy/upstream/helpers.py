"""Builders for upstream tests: host sets, a deterministic RNG, a pool driver."""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from isthmus.proxy.upstream.endpoints import Endpoint, HostSet
from isthmus.proxy.upstream.health import HealthFlag, HealthStatus
from isthmus.proxy.upstream.lb import ChooseContext


def endpoints(n: int, weights: Sequence[int] | None = None, *, priority: int = 0, base: int = 0,
              health: HealthStatus = HealthStatus.HEALTHY) -> list[Endpoint]:
    weights = weights or [1] * n
    return [Endpoint(f"10.0.{(base + i) // 200}.{(base + i) % 200 + 1}", 8080, weight=weights[i],
                     priority=priority, health_status=health) for i in range(n)]


def host_set(n: int, weights: Sequence[int] | None = None) -> HostSet:
    return HostSet(endpoints(n, weights))


def rng(seed: int = 7) -> random.Random:
    return random.Random(seed)


def eject(hs: HostSet, *indexes: int) -> None:
    for i in indexes:
        hs.set_health_flag(hs.hosts[i], HealthFlag.FAILED_OUTLIER_CHECK, True)


def counts(lb, picks: int, context: ChooseContext | None = None) -> Counter:
    return Counter(lb.choose(context) for _ in range(picks))


def hash_context(i: int) -> ChooseContext:
    from isthmus.proxy.upstream.hashing import hash_str
    return ChooseContext(hash_key=hash_str(f"user-{i}"))
