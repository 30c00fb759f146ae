"""Eval in text: each scenario's lines typed into a livekit ``AgentSession`` (no audio).

The same Agent, tools and book as a call, with any ``llm.LLM``; used for the model comparison
(``compare``) and the unit tests. The audio eval (``audio``) adds STT and TTS around it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from livekit.agents import AgentSession, llm

from voice_ai.agent.actions import RecordingCallActions
from voice_ai.agent.booking import AppointmentBook, InMemoryAppointmentBook
from voice_ai.agent.eval.scenarios import EvalScenario
from voice_ai.agent.eval.score import EvalReport, TurnObservation, TurnScore, score_turn
from voice_ai.agent.profile import BusinessProfile
from voice_ai.agent.receptionist import build_receptionist, business_clock
from voice_ai.agent.when import parse_time, resolve_day
from voice_ai.store.appointments import Appointment

__all__ = ["run_text_eval", "seed"]


async def seed(book: AppointmentBook, scenario: EvalScenario, today: date,
               profile: BusinessProfile) -> None:
    """Put the scenario's existing appointments in the book."""
    for s in scenario.seed_appointments:
        svc = profile.service(s.service)
        await book.book(Appointment(
            day=resolve_day(s.day, today), start=parse_time(s.time),
            service=svc.name if svc else s.service, caller_name="Seeded Patient"))


async def run_text_eval(profile: BusinessProfile, scenarios: list[EvalScenario],
                        make_llm: Callable[[], llm.LLM[Any]], *, today: date,
                        label: str) -> EvalReport:
    scores: list[TurnScore] = []
    for scenario in scenarios:
        book = InMemoryAppointmentBook()
        await seed(book, scenario, today, profile)
        actions = RecordingCallActions()
        agent = build_receptionist(profile, book, actions, call_id=scenario.name,
                                   now=business_clock(profile, today))
        seen: list[TurnObservation] = []
        async with AgentSession(llm=make_llm()) as session:
            await session.start(agent)
            for line in scenario.turns:
                started = time.perf_counter()
                result: Any = await session.run(user_input=line.say)
                obs = TurnObservation(heard=line.say, llm_s=time.perf_counter() - started)
                for ev in result.events:
                    if ev.type == "function_call":
                        args = json.loads(ev.item.arguments or "{}")
                        obs.tools.append((ev.item.name, {str(k): str(v)
                                                         for k, v in args.items()}))
                    elif ev.type == "message":
                        obs.reply += (" " if obs.reply else "") + (ev.item.text_content or "")
                seen.append(obs)
                if "transfer" in actions.kinds():
                    break  # the caller is with a person now
        rows = list(book.rows.values())
        transferred = "transfer" in actions.kinds()
        for i, line in enumerate(scenario.turns):
            obs = seen[i] if i < len(seen) else TurnObservation()
            misses = score_turn(line.expect, obs, book=rows, transferred=transferred,
                                today=today)
            scores.append(TurnScore(scenario.name, i, line.say, line.expect.kind, not misses,
                                    misses, obs))
    return EvalReport(mode="text", llm=label, turns=scores)
