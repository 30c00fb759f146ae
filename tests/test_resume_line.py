"""A call carried on by a second call runtime after the first one died, without Ray: both
runtimes reach the same simulated caller over its line (as two call actors would), the
first one's socket is cut mid-call (a killed process), the second resumes from the last
checkpoint. In-memory pools with scripted providers, the caller at real-time pace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from tests.fakes.providers import EnergyVAD, ScriptedLLM, ScriptedSTT, ToneTTS
from tests.test_call_runtime import pools
from voice_ai.config import Settings
from voice_ai.pipeline.checkpoint import (
    CallHandedOver,
    ResumeCause,
    ResumeOrder,
    SavedCheckpoint,
    decode,
)
from voice_ai.pipeline.line import LineTransport
from voice_ai.pipeline.line_exchange import LineExchange
from voice_ai.pipeline.runtime import CallRuntime
from voice_ai.pipeline.scenario import CallerLine, Scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transport import CallTransport
from voice_ai.records import CallOutcome

pytestmark = pytest.mark.integration

LINES = ("i would like a cleaning", "is tuesday free", "what did i ask for first",
         "thanks goodbye")


def _scenario(pause_before_third_s: float) -> Scenario:
    return Scenario(name="resume", reply_timeout_s=6, turns=(
        CallerLine(say="I would like a cleaning.", pause_before_s=0.3),
        CallerLine(say="Is Tuesday free?", pause_before_s=0.3),
        CallerLine(say="What did I ask for first?", pause_before_s=pause_before_third_s),
        CallerLine(say="Thanks, goodbye.", pause_before_s=0.3)))


class World:
    """One caller host and the shared pools two call runtimes reach."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(stt_preflight=False, recordings_dir=tmp_path)
        self.stt = ScriptedSTT(list(LINES))
        self.llm = ScriptedLLM(["A cleaning, sure.", "Tuesday at ten is free.",
                                "You asked about a cleaning.", "Goodbye."], first_token_s=0.05)
        self.tts = ToneTTS(name="piper", rate=22_050)
        self.exchange = LineExchange(ToneTTS(name="caller", rate=22_050))
        self.transports: list[CallTransport] = []

    def runtime(self) -> CallRuntime:
        runtime = CallRuntime(self.settings, pools(stt_whisper=self.stt, llm_local=self.llm,
                                                   tts_piper=self.tts),
                              None, vad_loader=lambda s: EnergyVAD(min_silence_s=0.4),
                              caller_lines=self.exchange)
        real = runtime.transport_for

        async def keep(spec: CallSpec) -> CallTransport:
            self.transports.append(await real(spec))
            return self.transports[-1]

        runtime.transport_for = keep  # type: ignore[method-assign]  # see the transports used
        return runtime


async def _until(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _cut(transport: CallTransport) -> None:
    """What the caller host sees when a call actor's process dies: the socket resets."""
    assert isinstance(transport, LineTransport) and transport._leg is not None
    transport._leg.writer.transport.abort()


async def test_a_second_runtime_carries_the_call_on_from_its_checkpoint(tmp_path: Path) -> None:
    world = World(tmp_path)
    await world.exchange.start()
    spec = CallSpec(call_id="resume-1", scenario=_scenario(2.5), admitted_at=time.time(),
                    record_audio=False)
    first: list[SavedCheckpoint] = []
    dead = asyncio.ensure_future(world.runtime().run_call(spec, on_checkpoint=first.append))
    try:
        await _until(lambda: first and first[-1].turn_count == 2, 30)
        _cut(world.transports[0])  # SIGKILL: no hang-up, the caller stays on the line
        lost_at = time.time()
        info = world.exchange.line_info(spec.call_id)
        assert info is not None and info.live

        second: list[SavedCheckpoint] = []
        order = ResumeOrder(ResumeCause.ACTOR_LOST, lost_at, checkpoint=first[-1])
        record = await world.runtime().run_call(dataclasses.replace(spec, resume=order),
                                                on_checkpoint=second.append)
        caller = world.exchange.caller(spec.call_id)
        legs = world.exchange.line_info(spec.call_id)
    finally:
        dead.cancel()
        await asyncio.gather(dead, return_exceptions=True)
        await world.exchange.aclose()

    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert record.started_at == spec.admitted_at  # one call, from its admission
    assert [t.user_text for t in record.turns] == list(LINES)
    assert [t.index for t in record.turns] == [0, 1, 2, 3]
    assert record.turns[2].agent_text == "You asked about a cleaning."
    # the new runtime's LLM request for turn 3 held turn 1's words (the restored context)
    third = next(r for r in world.llm.requests
                 if any(m.text_content == LINES[2] for m in r.messages()))
    said = [m.text_content for m in third.messages() if m.role == "user"]
    assert said[:2] == list(LINES[:2])
    # the caller heard the bridging line, then its last two lines were answered
    bridging = [t for t in world.tts.texts if "lost you for a second" in t]
    assert len(bridging) == 1 and "you were saying is tuesday free" in bridging[0]
    assert caller.unanswered == []
    assert [m.response_latency_s is not None for m in caller.speech_marks()] == [True] * 4
    assert legs is not None and legs.legs_total == 2  # one caller, two legs
    # the second runtime checkpoints on, counting the resume
    latest = decode(second[-1], call_id=spec.call_id)
    assert (latest.turn_count, latest.resumes) == (4, 1)


async def test_a_handover_stops_at_a_turn_boundary_without_hanging_up(tmp_path: Path) -> None:
    world = World(tmp_path)
    await world.exchange.start()
    spec = CallSpec(call_id="handover-1", scenario=_scenario(1.5), admitted_at=time.time(),
                    record_audio=False)
    saved: list[SavedCheckpoint] = []
    handover = asyncio.Event()
    try:
        first = asyncio.ensure_future(world.runtime().run_call(
            spec, on_checkpoint=saved.append, handover=handover))
        await _until(lambda: saved and saved[-1].turn_count == 1, 30)
        handover.set()  # voice-ai drain: hand over at the next turn boundary
        with pytest.raises(CallHandedOver) as handed:
            await first
        assert handed.value.record.turns and not first.cancelled()
        info = world.exchange.line_info(spec.call_id)
        assert info is not None and info.live  # not hung up
        order = ResumeOrder(ResumeCause.DRAIN, time.time(), checkpoint=saved[-1])
        record = await world.runtime().run_call(dataclasses.replace(spec, resume=order))
    finally:
        await world.exchange.aclose()

    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert [t.user_text for t in record.turns] == list(LINES)
    assert not any("lost you" in t for t in world.tts.texts)  # a planned handover: no apology
