"""Eval through the whole call pipeline: simulated caller -> whisper -> the LLM -> Piper.

Each scenario is one call on ``CallSession`` with the embedded default's providers behind
in-memory pools (the call actor's path with the Ray process boundary left out: the pool wire
protocol, tool calls crossing it, the stages, VAD end of turn and the simulated caller's
real-time audio are all there). Appointments go to a SQLite store through the store's own
``AppointmentStore``; transfer, DTMF and hang-up go to the simulated caller's transport.
What the caller heard is what whisper made of Piper's voice, so a turn can fail on a
misheard line: that is part of the score.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

from livekit.agents import Agent

from voice_ai.agent.booking import LocalAppointmentBook
from voice_ai.agent.call import receptionist_factory, receptionist_settings
from voice_ai.agent.engine import ReceptionistLLM
from voice_ai.agent.eval.scenarios import EvalScenario
from voice_ai.agent.eval.score import EvalReport, TurnObservation, TurnScore, score_turn
from voice_ai.agent.eval.text import seed
from voice_ai.agent.profile import BusinessProfile
from voice_ai.agent.receptionist import ReceptionistAgent
from voice_ai.agent.tools import ToolRun
from voice_ai.config import Settings
from voice_ai.pipeline.session import AgentContext, AgentFactory, CallSession
from voice_ai.pipeline.simulated import SimulatedCaller
from voice_ai.records import CallRecord, EndReason

__all__ = ["run_audio_eval"]


async def _providers(settings: Settings, profile: BusinessProfile) -> tuple[Any, Any]:
    from voice_ai.pipeline.runtime import build_call_providers
    from voice_ai.pipeline.vad import load_vad
    from voice_ai.providers.factory import build_stt_engine, build_tts_engine, tts_frame_ms
    from voice_ai.providers.host import ProviderHost
    from voice_ai.providers.local.piper import PiperTTS
    from voice_ai.providers.local.whisper import WhisperSTT
    from voice_ai.providers.memory import MemoryPool

    piper = build_tts_engine(settings)
    hosted: dict[tuple[str, str], Any] = {
        ("stt", "whisper"): WhisperSTT(build_stt_engine(settings)),
        ("llm", "local"): ReceptionistLLM(profile),
        ("tts", "piper"): PiperTTS(piper, frame_ms=tts_frame_ms(settings, piper.sample_rate)),
    }

    async def connect(stage: str, provider: str) -> Any:
        return MemoryPool([ProviderHost(stage, provider, hosted[stage, provider])])

    return await build_call_providers(settings, connect, None, vad_model=load_vad(settings))


def _per_turn(record: CallRecord, runs: list[ToolRun], n: int) -> list[TurnObservation]:
    """Each caller turn's reply, timing and the tools that ran after it ended."""
    turns = list(record.turns)
    seen = []
    for i in range(n):
        if i >= len(turns):
            seen.append(TurnObservation())
            continue
        t = turns[i]
        end = turns[i + 1].ended_speaking_at if i + 1 < len(turns) else float("inf")
        ran = [(r.name, r.args) for r in runs if t.ended_speaking_at <= r.at < end]
        seen.append(TurnObservation(heard=t.user_text, reply=t.agent_text, tools=ran,
                                    e2e_s=t.e2e_s, llm_s=t.llm_ttft_s))
    return seen


async def run_audio_eval(settings: Settings, profile: BusinessProfile,
                         scenarios: list[EvalScenario], *, today: date, db_dir: Path
                         ) -> EvalReport:
    """One call per scenario, each with its own store file under ``db_dir``."""
    settings = receptionist_settings(
        settings.model_copy(update={"agent_today": today}), profile)
    providers, voice = await _providers(settings, profile)
    scores: list[TurnScore] = []
    records: list[dict[str, Any]] = []
    for scenario in scenarios:
        book = LocalAppointmentBook(db_dir / f"{scenario.name}.db")
        await seed(book, scenario, today, profile)
        caller = SimulatedCaller(scenario.to_scenario(), voice)
        agents: list[ReceptionistAgent] = []
        make = receptionist_factory(profile, book)

        def factory(ctx: AgentContext, make: AgentFactory = make,
                    agents: list[ReceptionistAgent] = agents) -> Agent:
            agent = make(ctx)
            assert isinstance(agent, ReceptionistAgent)
            agents.append(agent)  # its tools' journal says what ran in which turn
            return agent

        session = CallSession(settings, providers, call_id=scenario.name, agent_factory=factory)
        record = await session.run(caller, admitted_at=time.time())
        runs = agents[0].receptionist_tools.runs if agents else []
        rows = await book.every_appointment()
        transferred = record.end_reason is EndReason.TRANSFERRED
        for i, (line, obs) in enumerate(zip(scenario.turns,
                                            _per_turn(record, runs, len(scenario.turns)),
                                            strict=True)):
            misses = score_turn(line.expect, obs, book=rows, transferred=transferred,
                                today=today)
            scores.append(TurnScore(scenario.name, i, line.say, line.expect.kind, not misses,
                                    misses, obs))
        records.append({"scenario": scenario.name, "end_reason": record.end_reason.value,
                        "error": record.error, "turns": len(record.turns),
                        "transfers": list(caller.transfers), "dtmf": list(caller.dtmf_sent)})
    return EvalReport(mode="audio", llm="ReceptionistLLM (router)", turns=scores,
                      setup={"calls": records})
