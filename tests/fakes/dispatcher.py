"""An in-memory ``CallDispatcherPort``: a concurrency limit and one agent per room."""

from __future__ import annotations

import itertools

from voice_ai.records import EndReason
from voice_ai.telephony.dispatch import Admission, AdmissionStatus

__all__ = ["InMemoryDispatcher"]


class InMemoryDispatcher:
    """Keeps the port's rules with no Ray: ``started`` lists the rooms an agent was sent to."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.admissions: dict[str, Admission] = {}
        self.active: set[str] = set()
        self.started: list[tuple[str, str, str]] = []  # (direction, room, masked number)
        self.rejected: list[tuple[str, str]] = []  # (room, masked number)
        self.cancelled: list[tuple[str, EndReason]] = []
        self._ids = itertools.count(1)

    async def admit_inbound(self, room: str, caller_masked: str) -> Admission:
        return self._admit("inbound", room, caller_masked)

    async def start_outbound(self, room: str, to_masked: str) -> Admission:
        return self._admit("outbound", room, to_masked)

    async def cancel(self, room: str, reason: EndReason) -> None:
        self.active.discard(room)
        self.cancelled.append((room, reason))

    def finish(self, room: str) -> None:
        self.active.discard(room)

    def _admit(self, direction: str, room: str, who: str) -> Admission:
        first = self.admissions.get(room)
        if first is not None:
            if first.status is AdmissionStatus.REJECTED:
                return first
            return Admission(AdmissionStatus.DUPLICATE, first.call_id, room)
        call_id = f"call-{next(self._ids):04d}"
        if len(self.active) >= self.limit:
            admission = Admission(AdmissionStatus.REJECTED, call_id, room,
                                  reason="all lines busy (MAX_CONCURRENT_CALLS reached)")
            self.rejected.append((room, who))
        else:
            admission = Admission(AdmissionStatus.ACCEPTED, call_id, room)
            self.active.add(room)
            self.started.append((direction, room, who))
        self.admissions[room] = admission
        return admission
