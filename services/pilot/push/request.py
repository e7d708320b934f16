"""PushRequest: the one unit of work from a config change to a push, and its merge rule.

The same `merge` serves the global debounce and each connection's queue (as Istio's
pilot does): full wins over incremental, updated configs are unioned, the earliest
start time is kept (for convergence metrics), reasons are counted.
"""
from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

from isthmus.shared.config.resource import ResourceKey


class Reason(str, enum.Enum):
    CONFIG = "config"
    ENDPOINT = "endpoint"  # registry endpoints only: EDS-only push
    SERVICE = "service"
    PROXY = "proxy"  # a proxy connected or its metadata changed
    GLOBAL = "global"  # mesh config, resync
    DEBUG = "debug"


@dataclass(frozen=True)
class PushRequest:
    full: bool
    configs_updated: frozenset[ResourceKey] = frozenset()
    reasons: tuple[tuple[Reason, int], ...] = ()
    start: float = 0.0  # monotonic time of the first change merged into this request
    # EDS-only pushes name the services whose endpoints changed.
    eds_hosts: frozenset[str] = frozenset()

    @property
    def reason_counts(self) -> Counter:
        return Counter(dict(self.reasons))

    def merge(self, other: "PushRequest | None") -> "PushRequest":
        if other is None:
            return self
        reasons = self.reason_counts + other.reason_counts
        starts = [t for t in (self.start, other.start) if t]
        return PushRequest(
            full=self.full or other.full,
            configs_updated=self.configs_updated | other.configs_updated,
            reasons=tuple(sorted(reasons.items())),
            start=min(starts) if starts else 0.0,
            eds_hosts=self.eds_hosts | other.eds_hosts,
        )


def merge(a: PushRequest | None, b: PushRequest | None) -> PushRequest | None:
    if a is None:
        return b
    return a.merge(b)
