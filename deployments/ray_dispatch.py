"""``CallDispatcherPort`` for the HTTP routes, backed by the cluster's dispatcher actor."""

from __future__ import annotations

from typing import Any

from ray.actor import ActorHandle

from voice_ai.records import EndReason
from voice_ai.telephony.dispatch import Admission, AdmissionStatus

__all__ = ["RayCallDispatcher"]


class RayCallDispatcher:
    def __init__(self, dispatcher: ActorHandle) -> None:
        self._dispatcher = dispatcher

    @staticmethod
    def _admission(room: str, result: dict[str, Any]) -> Admission:
        status = AdmissionStatus(result["decision"])
        reason = "over MAX_CONCURRENT_CALLS" if status is AdmissionStatus.REJECTED else ""
        return Admission(status=status, call_id=result["call_id"], room=room, reason=reason)

    async def admit_inbound(self, room: str, caller_masked: str) -> Admission:
        result = await self._dispatcher.admit_room.remote(room, caller_masked, False)
        return self._admission(room, result)

    async def start_outbound(self, room: str, to_masked: str) -> Admission:
        result = await self._dispatcher.admit_room.remote(room, to_masked, True)
        return self._admission(room, result)

    async def cancel(self, room: str, reason: EndReason) -> None:
        await self._dispatcher.cancel_room.remote(room, reason.value)
