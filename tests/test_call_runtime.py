"""Whole calls through ``CallRuntime`` with no Ray: in-memory pools hosting scripted
providers, a scripted caller at real-time pace (a few seconds per call).

- preemptive generation: a reply started on an early transcript and cancelled because the
  caller went on talking is never heard (no frame of it reaches the transport) and never
  enters the chat history;
- an agent's function tools run in the call while the model answers through the LLM pool;
- the streaming cloud path (Deepgram-like live STT, turn detection "stt"): which provider
  served each stage is recorded on the turn, and a Deepgram stream that drops mid-call
  finishes that turn on whisper, in the same call; a pause inside a caller's line is not the
  end of the turn, and the reply started at it is never heard.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import Agent, function_tool, llm

from tests.fakes.providers import (
    EnergyVAD,
    LiveSTT,
    ScriptedLLM,
    ScriptedSTT,
    ToneTTS,
    ToolCallReply,
    frames,
    tone,
    utterance,
)
from tests.fakes.transport import ScriptedCaller
from voice_ai.config import Settings
from voice_ai.pipeline.runtime import CallRuntime
from voice_ai.pipeline.scenario import CallerLine, Scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.providers.host import ProviderHost
from voice_ai.providers.memory import MemoryPool
from voice_ai.providers.ports import PoolPort
from voice_ai.records import CallOutcome
from voice_ai.resilience.board import BreakerBoard
from voice_ai.resilience.breaker import BreakerConfig
from voice_ai.resilience.gate import BoardService
from voice_ai.resilience.quota import QuotaBoard

pytestmark = pytest.mark.integration

PREEMPTED = "PREEMPTED words that must never be heard."
PREEMPTED_AMP = 1111  # the fingerprint of the cancelled reply's audio


def pools(**providers: Any) -> Any:
    ports = {key: MemoryPool([ProviderHost(*key.split("_"), p)])
             for key, p in providers.items()}

    async def connect(stage: str, provider: str) -> PoolPort:
        return ports[f"{stage}_{provider}"]

    return connect


def spec() -> CallSpec:
    return CallSpec(call_id="t1", scenario=Scenario(name="x", turns=(CallerLine(say="x"),)),
                    admitted_at=time.time())


def peak(frame: rtc.AudioFrame) -> int:
    return int(np.abs(np.frombuffer(frame.data, dtype=np.int16)).max(initial=0))


async def test_cancelled_preemptive_reply_never_reaches_the_caller() -> None:
    settings = Settings(preemptive_generation=True, preemptive_tts=True, stt_preflight=True,
                        stt_preflight_silence_s=0.1, optimization_level="balanced")
    whisper = ScriptedSTT(["first part", "first part and the rest", "thanks"])
    agent_llm = ScriptedLLM([PREEMPTED, "Here is the real answer.", "Bye now."],
                            first_token_s=0.05, token_s=0.02)
    voice = ToneTTS(name="piper", rate=22_050,
                    loudness=lambda text: PREEMPTED_AMP if "PREEMPTED" in text else 6000)
    runtime = CallRuntime(settings, pools(stt_whisper=whisper, llm_local=agent_llm,
                                          tts_piper=voice),
                          None, vad_loader=lambda s: EnergyVAD(min_silence_s=0.4))
    # the caller: speech, a short pause (the early transcript is taken), more speech, then
    # quiet until the answer; a second turn later
    script = (frames(bytes(int(0.6 * 16_000) * 2))  # the greeting plays
              + frames(tone(0.5)) + frames(bytes(int(0.25 * 16_000) * 2))
              + utterance(speech_s=0.5, silence_s=1.5) + utterance(speech_s=0.4, silence_s=0.5))
    caller = ScriptedCaller(script, hang_up_after_s=0.6)
    record = await runtime.run_call(spec(), transport=caller)

    assert record.outcome is CallOutcome.COMPLETED, record.error
    # the early transcript did start a reply (the test can fail) ...
    first_request = agent_llm.requests[0].items[-1]
    assert isinstance(first_request, llm.ChatMessage)
    assert first_request.text_content == "first part"
    # ... which was cancelled: not one of its frames reached the caller
    peaks = [peak(f) for _, f in caller.agent_frames]
    assert peaks and not any(PREEMPTED_AMP - 100 <= p <= PREEMPTED_AMP + 100 for p in peaks)
    assert max(peaks) > 5000  # the greeting and the real answer were heard
    # ... nor the chat history: the answer to the whole utterance is what the call kept
    assert record.turns[0].user_text == "first part and the rest"
    assert record.turns[0].agent_text == "Here is the real answer."
    later = agent_llm.requests[-1]
    assert not any(PREEMPTED in (getattr(i, "text_content", "") or "") for i in later.items)
    assert all(PREEMPTED not in t.agent_text for t in record.turns)


def cloud_settings() -> Settings:
    return Settings.model_validate({
        "stt_provider": "deepgram", "llm_provider": "openai", "tts_provider": "cartesia",
        "deepgram_api_key": "k", "openai_api_key": "k", "cartesia_api_key": "k",
        "cloud_placement": "pool", "stt_preflight": False, "breaker_min_requests": 5})


async def test_streaming_cloud_call_records_providers_and_fails_over_mid_call() -> None:
    settings = cloud_settings()
    live = LiveSTT(["what are your hours", "thanks"], mode="drop", drop_after=140)
    connect = pools(
        stt_deepgram=live, stt_whisper=ScriptedSTT(["thank you whisper"]),
        llm_openai=ScriptedLLM(["We open at nine.", "Goodbye."], name="openai"),
        llm_local=ScriptedLLM(["local"], name="local"),
        tts_cartesia=ToneTTS(name="cartesia"), tts_piper=ToneTTS(name="piper", rate=22_050))
    config = BreakerConfig(min_requests=5, recovery_timeout_s=30.0)
    board = BoardService(BreakerBoard(config), QuotaBoard({"deepgram": 10}), throttle_wait_s=0.1)
    runtime = CallRuntime(settings, connect, board, vad_loader=lambda s: EnergyVAD())
    info = await runtime.prepare()
    assert info.turn_detection == "stt"
    # turn 1 is heard by Deepgram; 130 frames (2.6 s) in, its stream drops during turn 2
    script = (frames(bytes(int(0.6 * 16_000) * 2)) + utterance(speech_s=0.6, silence_s=1.4)
              + utterance(speech_s=0.6, silence_s=1.2))
    caller = ScriptedCaller(script, hang_up_after_s=0.6)
    record = await runtime.run_call(spec(), transport=caller)

    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert [(t.stt_provider, t.llm_provider, t.tts_provider) for t in record.turns] == [
        ("deepgram", "openai", "cartesia"), ("whisper", "openai", "cartesia")]
    assert record.turns[0].user_text == "what are your hours"
    assert record.turns[1].user_text == "thank you whisper"  # the turn was not lost
    assert [t.fallback_used for t in record.turns] == [False, True]
    assert board.breakers.snapshot("deepgram").total_failures == 1


class ToolAgent(Agent):
    """A receptionist with one function tool (what the agent factory hands F's agents)."""

    def __init__(self, journal: list[str]) -> None:
        super().__init__(instructions="You are a receptionist.")
        self.journal = journal

    @function_tool
    async def opening_hours(self, day: str) -> str:
        """The clinic's opening hours on a day.

        Args:
            day: weekday name
        """
        self.journal.append(day)
        return f"{day}: 9 am to 5 pm"


async def test_agent_tools_run_in_the_call_through_the_llm_pool() -> None:
    settings = Settings(stt_preflight=False)
    journal: list[str] = []
    agent_llm = ScriptedLLM([ToolCallReply("opening_hours", '{"day": "Friday"}', "c1"),
                             "On Friday we are open from nine to five."])
    runtime = CallRuntime(settings, pools(stt_whisper=ScriptedSTT(["are you open on friday"]),
                                          llm_local=agent_llm, tts_piper=ToneTTS()),
                          None, vad_loader=lambda s: EnergyVAD(min_silence_s=0.4),
                          agent_factory=lambda ctx: ToolAgent(journal))
    script = frames(bytes(int(0.6 * 16_000) * 2)) + utterance(speech_s=0.5, silence_s=1.5)
    record = await runtime.run_call(spec(), transport=ScriptedCaller(script,
                                                                     hang_up_after_s=0.6))

    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert journal == ["Friday"]  # the tool ran in the call, with the pool model's arguments
    assert agent_llm.tools_seen[0] == ["opening_hours"]  # the schema crossed the pool
    second = agent_llm.requests[1].items
    assert [i.type for i in second][-2:] == ["function_call", "function_call_output"]
    assert record.turns[-1].agent_text == "On Friday we are open from nine to five."


async def test_a_pause_inside_a_line_does_not_end_the_turn_and_the_reply_starts_early() -> None:
    """Turn detection "stt": the provider's endpointing (0.3 s) sends a final at a 0.35 s
    pause inside the caller's line. That final starts a preemptive reply, but the turn is held
    for the VAD's silence (0.4 s at "balanced"), so the caller going on cancels it: one turn,
    answered once, and nothing of the early reply is heard."""
    settings = cloud_settings()
    live = LiveSTT(["okay", "i would like tuesday"], endpoint_s=0.3)
    agent_llm = ScriptedLLM([PREEMPTED, "Tuesday it is."], name="openai", first_token_s=0.05)
    voice = ToneTTS(name="cartesia",
                    loudness=lambda text: PREEMPTED_AMP if "PREEMPTED" in text else 6000)
    connect = pools(stt_deepgram=live, stt_whisper=ScriptedSTT(["whisper"]),
                    llm_openai=agent_llm, llm_local=ScriptedLLM(["local"], name="local"),
                    tts_cartesia=voice, tts_piper=ToneTTS(name="piper", rate=22_050))
    board = BoardService(BreakerBoard(BreakerConfig(min_requests=5)), QuotaBoard({}),
                         throttle_wait_s=0.1)
    runtime = CallRuntime(settings, connect, board, vad_loader=lambda s: EnergyVAD())
    script = (frames(bytes(int(0.6 * 16_000) * 2))  # the greeting plays
              + frames(tone(0.5) + bytes(int(0.35 * 16_000) * 2))  # "Okay," and a pause
              + utterance(speech_s=0.6, silence_s=1.4))
    caller = ScriptedCaller(script, hang_up_after_s=0.6)
    record = await runtime.run_call(spec(), transport=caller)

    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert [t.user_text for t in record.turns] == ["okay i would like tuesday"]
    assert [t.agent_text for t in record.turns] == ["Tuesday it is."]
    assert not record.turns[0].interrupted
    # the first final did start a reply before the turn ended (the test can fail) ...
    asked = [r.items[-1] for r in agent_llm.requests]
    assert [getattr(m, "text_content", None) for m in asked] == [
        "okay", "okay i would like tuesday"]
    # ... and not one frame of it reached the caller
    peaks = [peak(f) for _, f in caller.agent_frames]
    assert max(peaks) > 5000
    assert not any(PREEMPTED_AMP - 100 <= p <= PREEMPTED_AMP + 100 for p in peaks)
