"""Per-account concurrency quotas: how many streams or requests a provider account may have
open at once, cluster-wide (one ``QuotaBoard`` in the breaker registry actor).

A slot is held under a *lease* (a stream's or a request's id): taking it again under the same
lease renews it and takes nothing more, so a call's Deepgram stream holds one slot for the
whole call however many turns it serves. A lease not renewed for ``lease_s`` (its call actor
died without giving it back) frees its slot. The clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

__all__ = ["QuotaBoard"]


class QuotaBoard:
    def __init__(self, limits: Mapping[str, int], *, lease_s: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for provider, limit in limits.items():
            if limit < 1:
                raise ValueError(f"concurrency limit of {provider} must be at least 1")
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._limits = dict(limits)
        self._lease_s = lease_s
        self._clock = clock
        self._held: dict[str, dict[str, float]] = {}  # provider -> lease -> renewed at

    def limit(self, provider: str) -> int | None:
        return self._limits.get(provider)

    def take(self, provider: str, lease: str) -> bool:
        """True when ``lease`` holds a slot of ``provider`` now (renewed or newly taken)."""
        held = self._expire(provider)
        limit = self._limits.get(provider)
        if lease in held or limit is None or len(held) < limit:
            held[lease] = self._clock()
            return True
        return False

    def give_back(self, provider: str, lease: str) -> None:
        self._held.get(provider, {}).pop(lease, None)

    def in_use(self, provider: str) -> int:
        return len(self._expire(provider))

    def _expire(self, provider: str) -> dict[str, float]:
        held = self._held.setdefault(provider, {})
        now = self._clock()
        for lease, renewed in list(held.items()):
            if now - renewed > self._lease_s:
                del held[lease]
        return held
