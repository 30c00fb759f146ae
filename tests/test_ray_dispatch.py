"""The HTTP routes' dispatcher port: retried through a dispatcher restart within a deadline,
then ``DispatcherUnavailable`` (503), never a 500. A fake actor handle, no Ray cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ray.exceptions import ActorUnavailableError

from deployments.ray_dispatch import RayCallDispatcher
from voice_ai.calls.dispatch import StartResult
from voice_ai.pipeline.admission import Decision
from voice_ai.telephony.dispatch import AdmissionStatus, DispatcherUnavailable

pytestmark = pytest.mark.unit


class Restarting:
    """``handle.admit_room.remote(...)``: fails ``outages`` times, then admits (or hangs)."""

    def __init__(self, outages: int, *, hang: bool = False) -> None:
        self.outages = outages
        self.hang = hang
        self.calls = 0

    def __getattr__(self, method: str) -> Any:
        owner = self

        class Method:
            def remote(self, *args: Any) -> Any:
                owner.calls += 1

                async def run() -> StartResult:
                    if owner.hang:
                        await asyncio.Event().wait()
                    if owner.calls <= owner.outages:
                        raise ActorUnavailableError("dispatcher restarting", b"\0" * 16)
                    return StartResult(Decision.ACCEPTED, "c-1")

                return run()

        return Method()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.now += s


async def test_admission_is_retried_through_a_restart() -> None:
    clock = Clock()
    port = RayCallDispatcher(Restarting(3), deadline_s=8.0,  # type: ignore[arg-type]
                             sleep=clock.sleep, clock=clock)
    admission = await port.admit_inbound("call-room", "+1******67")
    assert (admission.status, admission.call_id) == (AdmissionStatus.ACCEPTED, "c-1")
    assert clock.now == pytest.approx(0.1 + 0.2 + 0.4)  # backoff, no busy loop


async def test_a_dispatcher_down_past_the_deadline_is_unavailable_not_an_error() -> None:
    clock = Clock()
    port = RayCallDispatcher(Restarting(10_000), deadline_s=3.0,  # type: ignore[arg-type]
                             sleep=clock.sleep, clock=clock)
    with pytest.raises(DispatcherUnavailable, match="did not answer within 3 s"):
        await port.start_outbound("call-room", "+1******67")
    assert clock.now == pytest.approx(3.0)


async def test_a_hung_dispatcher_is_unavailable_after_the_deadline() -> None:
    port = RayCallDispatcher(Restarting(0, hang=True), deadline_s=0.05)  # type: ignore[arg-type]
    with pytest.raises(DispatcherUnavailable):
        await port.admit_inbound("call-room", "")
