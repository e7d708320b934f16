"""Consistent-hashing balancers: ring hash (ketama) and Maglev, built as Envoy builds them.

Contract: both place hosts by `Host.hash_key()` (envoy.lb `hash_key` metadata, else the
hostname when `use_hostname_for_hashing`, else `ip:port`) hashed with XXH64, so tables
are identical across restarts and match Envoy's for the same hosts. A request's hash
(`ChooseContext.hash_key`, see `hashing.request_hash`) picks the priority level
(hash % 100) and then the host; without one, a random hash is used. On a retry with
excluded hosts the ring walks to the next entry and Maglev perturbs the hash.

Ring: each host gets ≈ weight-proportional entries, `scale = min(ceil(min_w ×
minimum_ring_size) / min_w, maximum_ring_size)` over normalized weights, entry i
hashed from `"<key>_<i>"`; lookup is the first entry clockwise (bisect, O(log n)).
As in Envoy, the entries per host grow as hosts leave, so removing one of N hosts
moves its ~1/N of keys plus up to ~1/N more among the others; Maglev moves almost
only the removed host's keys.
Maglev: a prime `table_size` (65537) filled by each host's (offset, skip) permutation,
offset = XXH64(key, seed 0) % M, skip = XXH64(key, seed 1) % (M − 1) + 1, hosts taking
turns in proportion to weight (Envoy's weighted variant); lookup is `table[hash % M]`.
Hosts are sorted by key before filling, so the table does not depend on EDS order.
Tables are rebuilt when the healthy set changes; Maglev keeps a few recent tables so
an ejection that comes and goes costs one build, not one per flip.
"""
from __future__ import annotations

import bisect
import math
import random
from collections import OrderedDict
from collections.abc import Sequence

from .endpoints import Host, HostSet
from .hashing import hash_str
from .lb import BaseLoadBalancer, Picker

__all__ = ["RingHash", "Maglev", "build_ring", "build_maglev_table", "is_prime"]

_M64 = 0xFFFFFFFFFFFFFFFF
MAX_RING_SIZE = 8 * 1024 * 1024
MAX_MAGLEV_TABLE = 5000011


def build_ring(
    keys: Sequence[str], weights: Sequence[int], minimum_ring_size: int = 1024, maximum_ring_size: int = MAX_RING_SIZE
) -> tuple[list[int], list[int]]:
    """Sorted ring hashes and, in parallel, the index of the host owning each entry."""
    total = sum(weights)
    normalized = [w / total for w in weights]
    min_w = min(normalized)
    scale = min(math.ceil(min_w * minimum_ring_size) / min_w, float(maximum_ring_size))
    entries: list[tuple[int, int]] = []
    target, current = 0.0, 0
    for index, (key, w) in enumerate(zip(keys, normalized)):
        target += scale * w
        i = 0
        while current < target:
            entries.append((hash_str(f"{key}_{i}"), index))
            i += 1
            current += 1
    entries.sort()
    return [h for h, _ in entries], [i for _, i in entries]


def build_maglev_table(keys: Sequence[str], weights: Sequence[int], table_size: int = 65537) -> list[int]:
    """Maglev lookup table of host indexes (`keys` in the order they take turns)."""
    m = table_size
    n = len(keys)
    pos = [hash_str(k, 0) % m for k in keys]
    skip = [hash_str(k, 1) % (m - 1) + 1 for k in keys]
    max_w = max(weights)
    target = [0] * n
    table = [-1] * m
    filled = 0
    iteration = 0
    while True:
        for i in range(n):
            # A host of weight max_w takes a turn every round, one of max_w/k every k rounds.
            if iteration * weights[i] < target[i]:
                continue
            target[i] += max_w
            c, s = pos[i], skip[i]
            while table[c] >= 0:
                c += s
                if c >= m:
                    c -= m
            table[c] = i
            c += s
            pos[i] = c - m if c >= m else c
            filled += 1
            if filled == m:
                return table
        iteration += 1


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


class _HashBalancer(BaseLoadBalancer):
    hash_based = True

    def __init__(
        self,
        host_set: HostSet,
        *,
        use_hostname_for_hashing: bool = False,
        panic_threshold: float = 50.0,
        rng: random.Random | None = None,
    ) -> None:
        self.use_hostname_for_hashing = use_hostname_for_hashing
        super().__init__(host_set, panic_threshold=panic_threshold, rng=rng)


class RingHash(_HashBalancer):
    """Ketama ring (Envoy RING_HASH, XX_HASH); see the module docstring."""

    def __init__(
        self,
        host_set: HostSet,
        *,
        minimum_ring_size: int = 1024,
        maximum_ring_size: int = MAX_RING_SIZE,
        use_hostname_for_hashing: bool = False,
        panic_threshold: float = 50.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= minimum_ring_size <= maximum_ring_size <= MAX_RING_SIZE:
            raise ValueError(
                "ring_hash: need 1 <= minimum_ring_size <= maximum_ring_size <= 8M "
                f"(got {minimum_ring_size}, {maximum_ring_size})"
            )
        self.minimum_ring_size = minimum_ring_size
        self.maximum_ring_size = maximum_ring_size
        super().__init__(host_set, use_hostname_for_hashing=use_hostname_for_hashing,
                         panic_threshold=panic_threshold, rng=rng)

    def _make_picker(self, hosts: tuple[Host, ...]) -> Picker:
        keys = [h.hash_key(self.use_hostname_for_hashing) for h in hosts]
        hashes, owners = build_ring(keys, [h.weight for h in hosts], self.minimum_ring_size, self.maximum_ring_size)
        ring = [hosts[i] for i in owners]
        size = len(ring)
        left = bisect.bisect_left

        def pick(key: int, attempt: int) -> Host:
            i = left(hashes, key)
            if attempt:
                i += attempt
            return ring[i % size]

        return pick


class Maglev(_HashBalancer):
    """Maglev (Envoy MAGLEV); see the module docstring."""

    CACHE_TABLES = 4

    def __init__(
        self,
        host_set: HostSet,
        *,
        table_size: int = 65537,
        use_hostname_for_hashing: bool = False,
        panic_threshold: float = 50.0,
        rng: random.Random | None = None,
    ) -> None:
        if not (is_prime(table_size) and table_size <= MAX_MAGLEV_TABLE):
            raise ValueError(f"maglev.table_size must be a prime <= {MAX_MAGLEV_TABLE} (got {table_size})")
        self.table_size = table_size
        self._tables: OrderedDict[tuple[tuple[str, int], ...], list[int]] = OrderedDict()
        super().__init__(host_set, use_hostname_for_hashing=use_hostname_for_hashing,
                         panic_threshold=panic_threshold, rng=rng)

    def _index_table(self, entries: tuple[tuple[str, int], ...]) -> list[int]:
        table = self._tables.get(entries)
        if table is None:
            table = build_maglev_table([k for k, _ in entries], [w for _, w in entries], self.table_size)
            self._tables[entries] = table
            while len(self._tables) > self.CACHE_TABLES:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(entries)
        return table

    def _make_picker(self, hosts: tuple[Host, ...]) -> Picker:
        ordered = sorted(hosts, key=lambda h: h.hash_key(self.use_hostname_for_hashing))
        entries = tuple((h.hash_key(self.use_hostname_for_hashing), h.weight) for h in ordered)
        table = [ordered[i] for i in self._index_table(entries)]
        m = self.table_size

        def pick(key: int, attempt: int) -> Host:
            if attempt:
                # A retry avoiding earlier hosts: flip many bits so attempts spread out.
                key ^= (_M64 - attempt + 1) & _M64
            return table[key % m]

        return pick
