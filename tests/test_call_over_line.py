"""A whole call through ``CallRuntime`` whose simulated caller lives on a caller host and is
reached over a line (``voice_ai/pipeline/line.py``), as in a call actor: no Ray, in-memory
pools with scripted providers, the caller at real-time pace (a few seconds).

What a call actor now pays is the call, not the caller: the caller's lines are synthesized,
paced, heard and recorded on the host; the call's turns still carry the caller's own timing
marks (caller stopped speaking -> caller first heard the reply).
"""

from __future__ import annotations

import time
import wave
from pathlib import Path

import pytest

from tests.fakes.providers import EnergyVAD, ScriptedLLM, ScriptedSTT, ToneTTS
from tests.test_call_runtime import pools
from voice_ai.config import Settings
from voice_ai.pipeline.line import LineTransport
from voice_ai.pipeline.line_exchange import LineExchange
from voice_ai.pipeline.runtime import CallRuntime
from voice_ai.pipeline.scenario import CallerLine, Scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transport import CallTransport
from voice_ai.records import CallOutcome

pytestmark = pytest.mark.integration


async def test_a_call_actors_runtime_reaches_its_caller_over_a_line(tmp_path: Path) -> None:
    settings = Settings(stt_preflight=False, recordings_dir=tmp_path / "actor-side")
    stt = ScriptedSTT(["what are your hours", "thanks"])
    agent_llm = ScriptedLLM(["We open at nine.", "Goodbye."], first_token_s=0.05)
    # the caller host speaks with its own voice (in the cluster: the Piper pool)
    exchange = await LineExchange(ToneTTS(name="caller", rate=22_050),
                                  recordings_dir=tmp_path / "caller-host").start()
    runtime = CallRuntime(settings, pools(stt_whisper=stt, llm_local=agent_llm,
                                          tts_piper=ToneTTS(name="piper", rate=22_050)),
                          None, vad_loader=lambda s: EnergyVAD(min_silence_s=0.4),
                          caller_lines=exchange)
    scenario = Scenario(name="hours", reply_timeout_s=5, turns=(
        CallerLine(say="What are your hours?", pause_before_s=0.3),
        CallerLine(say="Thanks.", pause_before_s=0.3)))
    spec = CallSpec(call_id="line-1", scenario=scenario, admitted_at=time.time())
    used: list[CallTransport] = []
    real_transport_for = runtime.transport_for

    async def keep(s: CallSpec) -> CallTransport:
        used.append(await real_transport_for(s))
        return used[-1]

    runtime.transport_for = keep  # type: ignore[method-assign]  # see which transport ran
    try:
        record = await runtime.run_call(spec)
        marks = exchange.caller("line-1").speech_marks()  # kept on the host after the end
    finally:
        await exchange.aclose()

    assert isinstance(used[0], LineTransport)  # the caller was not in this process
    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert [t.user_text for t in record.turns] == ["what are your hours", "thanks"]
    assert record.turns[0].agent_text == "We open at nine."
    # e2e is the caller's own measure, made on its host and sent over the line
    assert [t.e2e_s for t in record.turns] == [m.response_latency_s for m in marks]
    assert all(t.e2e_s is not None and 0.3 < t.e2e_s < 3.0 for t in record.turns)
    # the recording was made where the caller is, and the record points at it
    assert record.recording_path == str(tmp_path / "caller-host" / "line-1.wav")
    with wave.open(record.recording_path) as w:
        assert w.getnchannels() == 2 and w.getnframes() > 16_000  # more than a second
