"""Cluster-wide admission: at most MAX_CONCURRENT_CALLS calls, one agent per room.

A plain object owned by the single dispatcher (``voice_ai.calls.dispatch.CallDispatch``). Its
methods never await, so a burst of simultaneous arrivals is decided one at a time, with no
over-admission. After a dispatcher restart ``adopt`` puts the calls still running back.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AdmissionControl", "Decision"]


class Decision(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


class AdmissionControl:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._active: dict[str, str] = {}  # key (room or call id) -> call id
        self.accepted_total = 0
        self.rejected_total = 0

    @property
    def active(self) -> int:
        return len(self._active)

    def admit(self, key: str, call_id: str) -> tuple[Decision, str]:
        """Decide for one arrival. ``key`` dedupes (a room); returns the decision and call id."""
        if key in self._active:
            return Decision.DUPLICATE, self._active[key]
        if len(self._active) >= self.limit:
            self.rejected_total += 1
            return Decision.REJECTED, call_id
        self._active[key] = call_id
        self.accepted_total += 1
        return Decision.ACCEPTED, call_id

    def adopt(self, key: str, call_id: str) -> None:
        """A call admitted before a restart and still running: it holds its slot again (even
        over the limit, if the limit was lowered meanwhile). Not counted as a new admission."""
        self._active[key] = call_id

    def holds(self, key: str) -> bool:
        return key in self._active

    def release(self, key: str) -> None:
        self._active.pop(key, None)
