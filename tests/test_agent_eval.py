"""The eval's scorer: the shipped scenarios pass with the router, and a wrong agent fails."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, llm, utils

from voice_ai.agent import ReceptionistLLM, load_profile
from voice_ai.agent.eval.scenarios import load_eval_scenarios
from voice_ai.agent.eval.text import run_text_eval

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
PROFILE = load_profile(ROOT / "agent.yaml")
DAY = date(2026, 11, 30)


class _Chatty(llm.LLM[Any]):
    """Says something plausible, never uses a tool: what SmolLM2 did."""

    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool] | None = None,
             **_: Any) -> llm.LLMStream:
        return _ChattyStream(self, chat_ctx=chat_ctx, tools=tools or [],
                             conn_options=DEFAULT_API_CONNECT_OPTIONS)


class _ChattyStream(llm.LLMStream):
    async def _run(self) -> None:
        delta = llm.ChoiceDelta(role="assistant", content="Sure, we are open every day at 9.")
        self._event_ch.send_nowait(llm.ChatChunk(id=utils.shortuuid(), delta=delta))


async def test_the_shipped_eval_scenarios_pass_with_the_router() -> None:
    scenarios = load_eval_scenarios(ROOT / "scenarios" / "eval")
    assert sum(len(s.turns) for s in scenarios) >= 30
    report = await run_text_eval(PROFILE, scenarios, lambda: ReceptionistLLM(PROFILE),
                                 today=DAY, label="router")
    assert report.share() is not None and report.share() >= 0.9, [
        (t.scenario, t.index, t.misses) for t in report.turns if not t.ok]
    assert report.share("transfer") == 1.0


async def test_an_agent_that_invents_scores_nothing() -> None:
    scenarios = load_eval_scenarios(ROOT / "scenarios" / "eval")
    report = await run_text_eval(PROFILE, scenarios, _Chatty, today=DAY, label="chatty")
    assert report.share("tool") == 0.0 and report.share("transfer") == 0.0
    booking = next(t for t in report.turns if t.scenario == "eval_booking" and t.index == 1)
    assert booking.misses == [
        "reply lacks 'booked'", "reply lacks '10 am'",
        "book_appointment did not run (ran none)",
        "no booked appointment 2026-12-01 10:00 check-up"]
