"""Load balancers: pick one host of a cluster per request, with Envoy's semantics.

Contract: every balancer implements `choose(context=None) -> Host | None`. It picks
among healthy hosts (outlier-ejected and EDS-unhealthy ones excluded), spreads load
over priority levels and degraded hosts with Envoy's overprovisioning arithmetic
(`priority_load`), and falls back to all hosts of a level whose available share is
below the panic threshold (default 50%; 0 disables panic). `None` means no host may
be picked: the router answers 503 with response flag UH. A `ChooseContext` carries
the request hash (hash-based balancers) and the hosts earlier attempts used: a pick
in `exclude` is retried up to `max_reselects` times, then kept (Envoy's
`previous_hosts` predicate with `host_selection_retry_max_attempts`).

Hot path: `choose()` only compares the host set's version, then runs a precomputed
picker; tables (EDF sequences, rings, Maglev tables) are built when the host set
changes, never per request. Randomness comes from an injectable `random.Random`.
"""
from __future__ import annotations

import abc

import dataclasses
import heapq
import math
import random
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from .endpoints import Host, HostSet

__all__ = [
    "NO_HEALTHY_UPSTREAM",
    "ChooseContext",
    "LoadBalancer",
    "PriorityLoad",
    "priority_load",
    "BaseLoadBalancer",
    "RoundRobin",
    "LeastRequest",
    "Random",
]

Picker = Callable[[int, int], Host]

NO_HEALTHY_UPSTREAM = "UH"  # response flag when choose() returns None (503)

# Above this many slots (sum of gcd-reduced weights) the weighted round robin runs a live
# EDF heap instead of a precomputed sequence.
MAX_RR_SEQUENCE = 1 << 16


class ChooseContext:
    """Per-request input to `choose()`: hash key and the retry host exclusions."""

    __slots__ = ("hash_key", "exclude", "max_reselects")

    def __init__(self, hash_key: int | None = None, exclude: Collection[Host] = (), max_reselects: int = 1) -> None:
        self.hash_key = hash_key
        self.exclude = exclude
        self.max_reselects = max_reselects


class LoadBalancer(Protocol):
    def choose(self, context: ChooseContext | None = None) -> Host | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class PriorityLoad:
    """Percent of traffic per priority to healthy and to degraded hosts; panic per level."""

    healthy: tuple[int, ...]
    degraded: tuple[int, ...]
    panic: tuple[bool, ...]


def _distribute(avail: Sequence[int], total: int, normalized: int) -> tuple[list[int], int, int]:
    loads, first = [], -1
    for i, a in enumerate(avail):
        if first < 0 and a > 0:
            first = i
        load = min(total, a * 100 // normalized)
        loads.append(load)
        total -= load
    return loads, total, first


def priority_load(
    levels: Sequence[tuple[int, int, int]], panic_threshold: float = 50.0, overprovisioning_factor: int = 140
) -> PriorityLoad:
    """Envoy's priority/degraded load and panic computation.

    `levels[p]` is (hosts, healthy, degraded) counts of priority p. A level's health is
    min(100, factor × healthy% / 100), likewise its degraded availability; load goes to
    healthy hosts of P0, P1, ... first, then to degraded ones, scaled up when the
    total (the normalized total availability) is below 100, and rounding leftovers go
    to the first available level. Below 100 total, a level whose (healthy+degraded)%
    is under `panic_threshold` is in panic. With nothing available the load follows
    host counts, in panic — unless the threshold is 0: then all loads are 0.
    """
    n = len(levels)
    health = [min(100, overprovisioning_factor * h // t) if t else 0 for t, h, _ in levels]
    degraded = [min(100, overprovisioning_factor * d // t) if t else 0 for t, _, d in levels]
    total_avail = min(100, sum(health) + sum(degraded))
    zeros = tuple([0] * n)
    if total_avail == 0:
        total_hosts = sum(t for t, _, _ in levels)
        if panic_threshold <= 0 or total_hosts == 0:
            return PriorityLoad(zeros, zeros, tuple([False] * n))
        loads = [t * 100 // total_hosts for t, _, _ in levels]
        first = next(i for i, (t, _, _) in enumerate(levels) if t)
        loads[first] += 100 - sum(loads)
        return PriorityLoad(tuple(loads), zeros, tuple([True] * n))
    panic = tuple(
        total_avail < 100 and (100.0 * (h + d) / t if t else 0.0) < panic_threshold for t, h, d in levels
    )
    healthy_load, remaining, first_h = _distribute(health, 100, total_avail)
    degraded_load, remaining, first_d = _distribute(degraded, remaining, total_avail)
    if remaining:
        if first_h >= 0:
            healthy_load[first_h] += remaining
        else:
            degraded_load[first_d] += remaining
    return PriorityLoad(tuple(healthy_load), tuple(degraded_load), panic)


def _no_host(key: int, attempt: int) -> None:  # type: ignore[return]
    return None


class BaseLoadBalancer(abc.ABC):
    """Priority/health/panic plumbing shared by every algorithm.

    Subclasses implement `_make_picker(hosts) -> Picker`; a picker gets a 64-bit key
    (the request hash for hash-based balancers, else random) and the attempt number.
    """

    hash_based = False  # key = request hash (random when the request has none)
    uses_key = False  # the picker needs a random key even with a single source

    def __init__(self, host_set: HostSet, *, panic_threshold: float = 50.0, rng: random.Random | None = None) -> None:
        if not 0.0 <= panic_threshold <= 100.0:
            raise ValueError(f"healthy_panic_threshold must be within [0, 100] (got {panic_threshold})")
        self.host_set = host_set
        self.panic_threshold = panic_threshold
        self.rng = rng if rng is not None else random.Random()
        self._bits = self.rng.getrandbits
        self._version = -1
        self._single: Picker | None = _no_host
        self._sources: tuple[tuple[int, Picker], ...] = ()
        self._panic = False
        self.lb_healthy_panic = 0  # requests balanced while some level was in panic

    # -- building ---------------------------------------------------------------------
    @abc.abstractmethod
    def _make_picker(self, hosts: tuple[Host, ...]) -> Picker:
        """The per-policy picker over one set of hosts, built once per host-set change."""

    def _rebuild(self) -> None:
        hs = self.host_set
        self._version = hs.version
        levels = hs.priorities
        plan = priority_load(
            [(len(p.hosts), len(p.healthy), len(p.degraded)) for p in levels],
            self.panic_threshold,
            hs.overprovisioning_factor,
        )
        pickers: dict[tuple[int, str], Picker] = {}
        entries: list[tuple[int, Picker]] = []
        for kind, loads in (("healthy", plan.healthy), ("degraded", plan.degraded)):
            for p, load in enumerate(loads):
                if not load:
                    continue
                source = (p, "all") if plan.panic[p] else (p, kind)
                if source not in pickers:
                    level = levels[p]
                    hosts = level.hosts if plan.panic[p] else getattr(level, kind)
                    pickers[source] = self._make_picker(hosts)
                entries.append((load, pickers[source]))
        cumulative, acc = [], 0
        for load, picker in entries:
            acc += load
            cumulative.append((acc, picker))
        self._sources = tuple(cumulative)
        distinct = set(pickers.values())
        self._single = next(iter(distinct)) if len(distinct) == 1 else (_no_host if not distinct else None)
        self._panic = any(plan.panic[p] for p, _ in pickers)

    def _select(self, key: int) -> Picker:
        h = key % 100 + 1
        for threshold, picker in self._sources:
            if h <= threshold:
                return picker
        return self._sources[-1][1]

    # -- the hot path -----------------------------------------------------------------
    def choose(self, context: ChooseContext | None = None) -> Host | None:
        if self._version != self.host_set.version:
            self._rebuild()
        single = self._single
        if self.hash_based:
            key = context.hash_key if context is not None and context.hash_key is not None else None
            if key is None:
                key = self._bits(64)
        elif self.uses_key or single is None:
            key = self._bits(64)
        else:
            key = 0
        pick = single or self._select(key)
        host = pick(key, 0)
        if self._panic:
            self.lb_healthy_panic += 1
        if host is None or context is None or not context.exclude or host not in context.exclude:
            return host
        exclude = context.exclude
        for attempt in range(1, context.max_reselects + 1):
            if not self.hash_based:
                key = self._bits(64)
                pick = single or self._select(key)
            host = pick(key, attempt)
            if host not in exclude:
                break
        return host

    @property
    def in_panic(self) -> bool:
        if self._version != self.host_set.version:
            self._rebuild()
        return self._panic


def _reduced_weights(hosts: Sequence[Host]) -> list[int]:
    g = 0
    for h in hosts:
        g = math.gcd(g, h.weight)
    return [h.weight // g for h in hosts]


def edf_sequence(weights: Sequence[int]) -> list[int]:
    """One period of an earliest-deadline-first schedule: index i appears weights[i]
    times, its j-th pick due at (j - 1/2) / weights[i] (ties: lower index first).

    Envoy's scheduler puts a host's first deadline at 1/w; starting half a step earlier
    (the Sainte-Laguë order) gives the same counts per period with about half the
    bursts: after any k picks a host is within ~1 of its share k·w/W.
    """
    slots = [((j - 0.5) / w, i) for i, w in enumerate(weights) for j in range(1, w + 1)]
    slots.sort()
    return [i for _, i in slots]


class _SequencePicker:
    __slots__ = ("_seq", "_i", "_n")

    def __init__(self, seq: list[Host], start: int) -> None:
        self._seq, self._n, self._i = seq, len(seq), start % len(seq)

    def pick(self, key: int, attempt: int) -> Host:
        i = self._i
        self._i = i + 1 if i + 1 < self._n else 0
        return self._seq[i]


class _EdfPicker:
    """Live EDF heap; `cost(host)` is 1/effective-weight, evaluated when re-queued."""

    __slots__ = ("_heap", "_hosts", "_cost", "_order")

    def __init__(self, hosts: tuple[Host, ...], cost: Callable[[Host], float], warmup: int) -> None:
        self._hosts, self._cost = hosts, cost
        self._heap = [(cost(h) / 2, i, i) for i, h in enumerate(hosts)]
        heapq.heapify(self._heap)
        self._order = len(hosts)
        for _ in range(warmup):
            self.pick(0, 0)

    def pick(self, key: int, attempt: int) -> Host:
        deadline, _, i = self._heap[0]
        host = self._hosts[i]
        self._order += 1
        heapq.heapreplace(self._heap, (deadline + self._cost(host), self._order, i))
        return host


class RoundRobin(BaseLoadBalancer):
    """Weighted round robin, smooth: one period of an EDF schedule (Envoy's scheduler),
    precomputed, starting at a random offset so proxies do not move in lockstep."""

    def _make_picker(self, hosts: tuple[Host, ...]) -> Picker:
        weights = _reduced_weights(hosts)
        if sum(weights) <= MAX_RR_SEQUENCE:
            seq = [hosts[i] for i in edf_sequence(weights)]
            return _SequencePicker(seq, self.rng.randrange(len(seq))).pick
        return _EdfPicker(hosts, lambda h: 1.0 / h.weight, self.rng.randrange(len(hosts))).pick


class LeastRequest(BaseLoadBalancer):
    """Envoy's least request: with equal weights, the fewest active requests among
    `choice_count` random hosts (P2C; ties keep the first drawn); with unequal weights,
    EDF with weight / (active_requests + 1) ** active_request_bias."""

    def __init__(
        self,
        host_set: HostSet,
        *,
        choice_count: int = 2,
        active_request_bias: float = 1.0,
        panic_threshold: float = 50.0,
        rng: random.Random | None = None,
    ) -> None:
        if choice_count < 2:
            raise ValueError(f"least_request.choice_count must be >= 2 (got {choice_count})")
        if active_request_bias < 0:
            raise ValueError(f"least_request.active_request_bias must be >= 0 (got {active_request_bias})")
        self.choice_count = choice_count
        self.active_request_bias = active_request_bias
        super().__init__(host_set, panic_threshold=panic_threshold, rng=rng)

    def _make_picker(self, hosts: tuple[Host, ...]) -> Picker:
        if len({h.weight for h in hosts}) > 1:
            bias = self.active_request_bias
            if bias == 1.0:
                cost = lambda h: (h._active_requests + 1) / h._weight  # noqa: E731
            else:
                cost = lambda h: (h._active_requests + 1) ** bias / h._weight  # noqa: E731
            return _EdfPicker(hosts, cost, self.rng.randrange(len(hosts))).pick
        if len(hosts) == 1:
            only = hosts[0]
            return lambda key, attempt: only
        rnd, n, extra = self.rng.random, len(hosts), self.choice_count - 1

        def p2c(key: int, attempt: int) -> Host:
            best = hosts[int(rnd() * n)]
            for _ in range(extra):
                other = hosts[int(rnd() * n)]
                if other._active_requests < best._active_requests:
                    best = other
            return best

        return p2c


class Random(BaseLoadBalancer):
    """A uniformly random available host; like Envoy's, it ignores endpoint weights."""

    uses_key = True

    def _make_picker(self, hosts: tuple[Host, ...]) -> Picker:
        n = len(hosts)
        return lambda key, attempt: hosts[key % n]
