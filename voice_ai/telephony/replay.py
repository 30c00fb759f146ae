"""Webhook replay guard: each LiveKit event id starts something at most once.

A captured webhook (body + signature) verifies again for as long as its token is valid, so
the event id is remembered until ``valid_until`` (see ``voice_ai.telephony.webhooks``); after
that the signature and freshness checks refuse the replay by themselves, and the id can go.
Memory is therefore bounded by the webhook rate times the validity window; ``max_ids`` caps it
further (the id closest to its expiry is forgotten first).

One guard must serve every Serve replica (a replay may reach another replica than the
original): in the cluster it lives in one named actor (``actors/webhook_guard.py``); tests
and a single process use ``LocalReplayGuard``.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["LocalReplayGuard", "ReplayGuard", "ReplayGuardPort"]


class ReplayGuardPort(Protocol):
    async def first_sighting(self, event_id: str, valid_until: float) -> bool:
        """``True`` the first time ``event_id`` is seen; ``False`` for a replay."""
        ...


class ReplayGuard:
    """The policy, synchronous and single-threaded (an actor, or one event loop)."""

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 max_ids: int = 100_000) -> None:
        if max_ids < 1:
            raise ValueError("max_ids must be at least 1")
        self._clock = clock
        self._max_ids = max_ids
        self._until: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []  # min-heap of (valid_until, event id)

    def __len__(self) -> int:
        return len(self._until)

    def first_sighting(self, event_id: str, valid_until: float) -> bool:
        if not event_id:
            raise ValueError("an event id is required")
        self._forget_expired(self._clock())
        if event_id in self._until:
            return False
        while len(self._until) >= self._max_ids:
            _, oldest = heapq.heappop(self._expiry)
            self._until.pop(oldest, None)
        self._until[event_id] = valid_until
        heapq.heappush(self._expiry, (valid_until, event_id))
        return True

    def _forget_expired(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] < now:
            _, event_id = heapq.heappop(self._expiry)
            self._until.pop(event_id, None)


class LocalReplayGuard:
    """``ReplayGuardPort`` over an in-process ``ReplayGuard``."""

    def __init__(self, guard: ReplayGuard | None = None) -> None:
        self.guard = guard or ReplayGuard()

    async def first_sighting(self, event_id: str, valid_until: float) -> bool:
        return self.guard.first_sighting(event_id, valid_until)
