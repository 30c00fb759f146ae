"""``CallDispatcherPort`` for the HTTP routes, backed by the cluster's dispatcher actor.

While Ray restarts the dispatcher (and the new one adopts the live calls) a request is retried
with backoff until ``deadline_s``; only then does it raise ``DispatcherUnavailable``, which the
routes answer with 503 and Retry-After instead of a 500. Retrying is safe: admission is
idempotent per room.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ray.actor import ActorHandle
from ray.exceptions import RayActorError

from voice_ai.calls.deadline import within
from voice_ai.calls.dispatch import StartResult
from voice_ai.records import EndReason
from voice_ai.telephony.dispatch import Admission, AdmissionStatus, DispatcherUnavailable

__all__ = ["RayCallDispatcher"]


class RayCallDispatcher:
    def __init__(self, dispatcher: ActorHandle[Any], *, deadline_s: float = 8.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._dispatcher = dispatcher
        self._deadline_s = deadline_s
        self._sleep = sleep
        self._clock = clock

    @staticmethod
    def _admission(room: str, result: StartResult) -> Admission:
        status = AdmissionStatus(result.decision.value)
        reason = "over MAX_CONCURRENT_CALLS" if status is AdmissionStatus.REJECTED else ""
        return Admission(status=status, call_id=result.call_id, room=room, reason=reason)

    async def admit_inbound(self, room: str, caller_masked: str) -> Admission:
        result = await self._ask("admit_room", room, caller_masked, False)
        return self._admission(room, result)

    async def start_outbound(self, room: str, to_masked: str) -> Admission:
        result = await self._ask("admit_room", room, to_masked, True)
        return self._admission(room, result)

    async def cancel(self, room: str, reason: EndReason) -> None:
        await self._ask("cancel_room", room, reason.value)

    async def _ask(self, method: str, *args: object) -> Any:
        deadline = self._clock() + self._deadline_s
        delay = 0.1
        while True:
            remaining = deadline - self._clock()
            try:
                return await within(getattr(self._dispatcher, method).remote(*args),
                                    max(remaining, 0.01), "the call dispatcher")
            except (RayActorError, TimeoutError) as e:  # restarting, or not answering
                last: BaseException = e
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise DispatcherUnavailable(
                    f"the call dispatcher did not answer within {self._deadline_s:g} s "
                    f"({type(last).__name__})") from None
            await self._sleep(min(delay, remaining))
            delay = min(2 * delay, 1.0)


class CallNotFinished(Exception):
    """A driver's wait for a call's record ended without one (the message says why)."""


def wait_for_record(namespace: str, call_id: str, timeout_s: float) -> Any:
    """Block (a driver, not an actor) until the call's record is known, through dispatcher
    restarts; ``CallNotFinished`` after ``timeout_s``. Returns the ``CallRecord``."""
    import ray

    from actors.names import DISPATCHER

    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CallNotFinished(f"call {call_id} did not end within {timeout_s:g} s")
        try:
            dispatcher = ray.get_actor(DISPATCHER, namespace=namespace)
            return ray.get(dispatcher.wait_call.remote(call_id), timeout=remaining)
        except ray.exceptions.GetTimeoutError:
            continue
        except KeyError:
            raise CallNotFinished(
                f"call {call_id} ended while the dispatcher restarted; its record is in the "
                "store (voice-ai report performance)") from None
        except (RayActorError, ValueError):  # restarting, or its name not registered yet
            time.sleep(min(1.0, max(remaining, 0.0)))
