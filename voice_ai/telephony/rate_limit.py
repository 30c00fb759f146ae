"""Per-key token buckets for the calls API (``POST /calls``): 429 with ``Retry-After`` beyond.

Each key (a hash of the bearer token presented; one shared key for every request whose token
is wrong, which caps guessing) holds a bucket of ``burst`` requests refilled at ``rate_per_s``.
The clock is injected, so tests step time instead of sleeping. Keys are bounded: past
``max_keys`` the least recently used bucket is dropped (it would have refilled anyway).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_s: float = 0.0
    """When refused: seconds until one request would be allowed."""

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` takes whole seconds; never 0 for a refusal."""
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        if rate_per_s <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate_per_s must be > 0, burst and max_keys at least 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def check(self, key: str) -> Verdict:
        """Take one request from ``key``'s bucket, or say how long to wait."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1.0:
            verdict = Verdict(True)
            tokens -= 1.0
        else:
            verdict = Verdict(False, (1.0 - tokens) / self._rate)
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return verdict
