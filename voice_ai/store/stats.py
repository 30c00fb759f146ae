"""The arithmetic behind the reports, in plain Python so a test can redo it by hand.

Percentiles use the **nearest-rank** method: for ``n`` sorted values ``v[1] <= ... <= v[n]``
the p-th percentile is ``v[ceil(p / 100 * n)]`` (rank at least 1). It is always one of the
measured values, never an interpolation: with 20 latencies, p95 is the 19th smallest and p99
the 20th (the largest); with 10, p50 is the 5th smallest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["LatencyStats", "peak_concurrency", "percentile"]


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values; ``p`` in (0, 100]."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Count, mean and nearest-rank p50/p95/p99 of one stage's latencies, in seconds."""

    count: int
    avg_s: float
    p50_s: float
    p95_s: float
    p99_s: float

    @classmethod
    def of(cls, values: Iterable[float]) -> LatencyStats | None:
        ordered = sorted(values)
        if not ordered:
            return None
        return cls(
            count=len(ordered),
            avg_s=sum(ordered) / len(ordered),
            p50_s=percentile(ordered, 50),
            p95_s=percentile(ordered, 95),
            p99_s=percentile(ordered, 99),
        )

    def to_dict(self) -> dict[str, float | int]:
        return {"count": self.count, "avg": self.avg_s, "p50": self.p50_s,
                "p95": self.p95_s, "p99": self.p99_s}


def peak_concurrency(intervals: Iterable[tuple[float, float]]) -> tuple[int, float | None]:
    """Most calls active at once over ``(start, end)`` intervals, and when it first happened.

    A call that ends exactly when another starts does not overlap it (ends sort first).
    """
    points: list[tuple[float, int]] = []
    for start, end in intervals:
        points.append((start, 1))
        points.append((max(start, end), -1))
    points.sort(key=lambda pt: (pt[0], pt[1]))
    active = peak = 0
    peak_at: float | None = None
    for at, delta in points:
        active += delta
        if active > peak:
            peak, peak_at = active, at
    return peak, peak_at
