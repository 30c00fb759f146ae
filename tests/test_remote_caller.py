"""The simulated caller lives outside the call actor, on a caller host (``CallerHost``): the
call actor reaches it over a line. On the running system: a simulated call completes through
the dispatcher with its caller on the host; and when the call actor is killed mid-call the
caller is still on the line, and a new leg dialled for the same call id reaches that caller
(what #18's resume builds on)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.caller_actor import RayCallerLines, caller_host_name
from actors.names import CALL_ACTOR_PREFIX
from voice_ai.audio import rms
from voice_ai.pipeline.line import CallerLineInfo, LineTransport
from voice_ai.pipeline.scenario import load_scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transports import caller_order
from voice_ai.records import CallOutcome, CallRecord

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def _host(system: Any) -> Any:
    s = system.settings
    return ray.get_actor(caller_host_name(0), namespace=s.ray_namespace)


def _info(system: Any, call_id: str) -> CallerLineInfo | None:
    info: CallerLineInfo | None = ray.get(_host(system).line_info.remote(call_id), timeout=10)
    return info


def _actor_of(system: Any, call_id: str) -> Any:
    ns = system.settings.ray_namespace
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == ns and entry["name"].startswith(CALL_ACTOR_PREFIX):
            handle = ray.get_actor(entry["name"], namespace=ns)
            info = ray.get(handle.info.remote(), timeout=10)
            if info.ticket is not None and info.ticket.call_id == call_id:
                return handle
    raise AssertionError(f"no call actor runs {call_id}")


def test_a_simulated_call_runs_with_its_caller_on_the_caller_host(local_system) -> None:
    dispatcher = local_system.handles.dispatcher
    before = ray.get(_host(local_system).status.remote(), timeout=30)
    spec = CallSpec(call_id=uuid.uuid4().hex[:16],
                    scenario=load_scenario(SCENARIOS / "opening_hours.yaml"))
    record = ray.get(dispatcher.run_simulated.remote(spec), timeout=240)
    after = ray.get(_host(local_system).status.remote(), timeout=30)

    assert isinstance(record, CallRecord), record
    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert after.dialled_total == before.dialled_total + 1  # its caller was on the host
    assert all(t.e2e_s is not None for t in record.turns)  # timed by the caller's marks
    assert "opening hours" in record.turns[0].user_text.lower()
    assert Path(record.recording_path).exists()


def test_killing_the_call_actor_leaves_the_caller_on_the_line_for_a_new_leg(
        local_system) -> None:
    dispatcher = local_system.handles.dispatcher
    scenario = load_scenario(SCENARIOS / "book_appointment.yaml")
    spec = CallSpec(call_id=uuid.uuid4().hex[:16], scenario=scenario, record_audio=False)
    started = ray.get(dispatcher.start_call.remote(spec), timeout=60)
    assert started.call_id == spec.call_id
    deadline = time.monotonic() + 120
    while (info := _info(local_system, spec.call_id)) is None or info.lines_spoken < 1:
        assert time.monotonic() < deadline, info
        time.sleep(0.5)
    ray.kill(_actor_of(local_system, spec.call_id), no_restart=True)  # mid-call

    while (info := _info(local_system, spec.call_id)) is not None and info.leg_connected:
        assert time.monotonic() < deadline, info
        time.sleep(0.2)
    assert info is not None and info.live  # the caller is still on the line

    async def new_leg() -> float:
        """Dial the same call as a new call actor would: the same caller answers, talking."""
        order = caller_order(spec, local_system.settings)
        assert order is not None
        transport = LineTransport(await RayCallerLines(local_system.settings).dial(order))
        await transport.connect()
        loudest = 0.0
        frames = 0
        async for frame in transport.audio_input:  # the caller's next line, in real time
            frames += 1
            loudest = max(loudest, rms(bytes(frame.data.cast("B"))))
            if loudest > 1_000 or frames > 1_500:  # up to 30 s
                break
        await transport.hangup()
        await transport.aclose()
        return loudest

    assert asyncio.run(new_leg()) > 1_000  # its speech reached the new leg
    info = _info(local_system, spec.call_id)
    assert info is not None and info.legs_total == 2 and not info.live
    record = ray.get(dispatcher.wait_call.remote(spec.call_id), timeout=60)
    assert record.outcome is CallOutcome.FAILED  # the dispatcher saw its actor die
