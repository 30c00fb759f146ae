"""The seam between the HTTP side and whoever runs calls: admission of a call to a room.

The Ray dispatcher (``actors/``) implements ``CallDispatcherPort``; tests use an in-memory one.
Rules every implementation keeps:

- **one agent per room**: a second ``admit_inbound`` / ``start_outbound`` for a room that is
  already admitted returns the first admission with status ``duplicate`` and the same call id;
- **capacity**: over ``MAX_CONCURRENT_CALLS`` the answer is ``rejected``; for an inbound call
  the implementation then plays the busy message (``play_busy_and_hangup``) and records the
  call with ``EndReason.REJECTED_BUSY``; nothing waits on that from the HTTP request;
- ``cancel`` frees an admitted room whose call never connected (an outbound dial that failed)
  and records it with the given reason;
- no method waits for ever: when no dispatcher answers within the implementation's deadline
  (say, during a dispatcher restart) it raises ``DispatcherUnavailable``, which the HTTP side
  answers with 503 and ``Retry-After``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from voice_ai.records import EndReason

__all__ = ["Admission", "AdmissionStatus", "CallDispatcherPort", "DispatcherUnavailable"]


class DispatcherUnavailable(Exception):
    """No dispatcher answered within the deadline; nothing was admitted. Safe to retry."""

    def __init__(self, message: str = "the call dispatcher is not answering",
                 *, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AdmissionStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Admission:
    """The dispatcher's answer for one room. ``call_id`` is set for every status (a rejected
    call is recorded too); ``reason`` says why a call was rejected."""

    status: AdmissionStatus
    call_id: str
    room: str
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.call_id or not self.room:
            raise ValueError("an admission needs a call_id and a room")

    @property
    def admitted(self) -> bool:
        """True when an agent is (or already was) assigned to the room."""
        return self.status is not AdmissionStatus.REJECTED

    def to_dict(self) -> dict[str, str]:
        data = {"status": self.status.value, "call_id": self.call_id, "room": self.room}
        if self.reason:
            data["reason"] = self.reason
        return data


@runtime_checkable
class CallDispatcherPort(Protocol):
    """Admits calls against ``MAX_CONCURRENT_CALLS`` and hands them to warm call actors."""

    async def admit_inbound(self, room: str, caller_masked: str) -> Admission:
        """A SIP caller is in ``room``: admit (an agent joins), reject (busy), or duplicate."""
        ...

    async def start_outbound(self, room: str, to_masked: str) -> Admission:
        """Reserve a slot and an agent for an outbound call about to be dialled into ``room``."""
        ...

    async def cancel(self, room: str, reason: EndReason) -> None:
        """The admitted call in ``room`` never connected: free its slot, record ``reason``."""
        ...
