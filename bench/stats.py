"""Small statistics for benchmark figures: percentiles, medians, min–max noise, ratios.

Pure functions over lists of floats; None stands for "no figure" and propagates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (p50 of [1,2,3,4] is 2)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median(values: Iterable[float | None]) -> float | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


@dataclass(frozen=True)
class Spread:
    """The median of several rounds and the noise around it (min–max)."""
    median: float | None
    min: float | None
    max: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> "Spread":
        vals = [v for v in values if v is not None]
        if not vals:
            return cls(None, None, None, 0)
        return cls(median(vals), min(vals), max(vals), len(vals))

    @property
    def noise_pct(self) -> float | None:
        """(max − min) / median, in percent."""
        if self.median in (None, 0) or self.min is None or self.max is None:
            return None
        return (self.max - self.min) / self.median * 100


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator
