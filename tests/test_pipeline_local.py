"""The call pipeline with the real local models and no Ray: ``CallSession`` + the simulated
caller + whisper, llama.cpp and Piper behind in-memory pools (the call actor's path with the
process boundary left out)."""

from __future__ import annotations

import re
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.engines import local_call_providers
from tests.fakes.providers import ScriptedLLM
from voice_ai.config import Settings
from voice_ai.pipeline.recorder import ConversationRecorder
from voice_ai.pipeline.scenario import CallerLine, Scenario
from voice_ai.pipeline.session import CallSession
from voice_ai.pipeline.simulated import SimulatedCaller
from voice_ai.records import CallOutcome, EndReason

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def _run(scenario: Scenario, llm: ScriptedLLM | None = None):
    settings = Settings()
    providers, voice = await local_call_providers(settings, llm=llm)
    recorder = ConversationRecorder()
    caller = SimulatedCaller(scenario, voice, recorder=recorder)
    session = CallSession(settings, providers, call_id="test-call")
    record = await session.run(caller, admitted_at=time.time())
    return record, recorder


async def test_one_call_real_models_transcribes_and_answers(tmp_path: Path) -> None:
    scenario = Scenario(name="t", turns=(CallerLine(
        say="Hello, I would like to book an appointment for Tuesday morning."),))
    record, recorder = await _run(scenario)

    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert record.end_reason is EndReason.CALLER_HANGUP
    assert len(record.turns) == 1
    turn = record.turns[0]
    heard = _words(turn.user_text)
    assert {"appointment", "tuesday"} <= heard, turn.user_text  # real STT, not the script
    assert turn.agent_text.strip()
    assert turn.e2e_s is not None and turn.e2e_s > 0.0  # a timing, not a target (benchmarks)
    assert (turn.stt_provider, turn.llm_provider, turn.tts_provider) == (
        "whisper", "local", "piper")
    assert recorder.agent_voiced_seconds > 0.5  # greeting + answer were heard

    wav = recorder.save(tmp_path / "call.wav")
    with wave.open(str(wav)) as w:
        assert w.getnchannels() == 2
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, 2)
    assert np.abs(frames[:, 0]).max() > 1000 and np.abs(frames[:, 1]).max() > 1000


async def test_barge_in_interrupts_the_agent() -> None:
    long_reply = ("Our cleaning prices depend on the treatment, a standard cleaning is eighty "
                  "dollars, a deep cleaning is one hundred and fifty dollars, and whitening is "
                  "three hundred dollars, we also offer payment plans for larger treatments.")
    llm = ScriptedLLM(replies=[long_reply, "Sure, Monday works."], name="local")
    scenario = Scenario(name="barge", turns=(
        CallerLine(say="Can you tell me about your cleaning prices?"),
        CallerLine(say="Sorry, I just need an appointment on Monday.", barge_in_after_s=1.0),
    ))
    record, _ = await _run(scenario, llm=llm)

    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert len(record.turns) == 2
    assert record.turns[0].interrupted
    assert "monday" in _words(record.turns[1].user_text)
    assert record.turns[1].agent_text.startswith("Sure")
