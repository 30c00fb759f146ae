"""The embedded default end to end, real models, no Ray: a caller books and asks for a person.

Piper speaks the caller's lines, whisper hears them, ``ReceptionistLLM`` answers through an
in-memory LLM pool, the tools book into a SQLite store and transfer through the simulated
caller's transport. One short call (about 20 s of audio in real time).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from voice_ai.agent import load_profile
from voice_ai.agent.eval.audio import run_audio_eval
from voice_ai.agent.eval.scenarios import EvalScenario
from voice_ai.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


async def test_a_spoken_call_books_and_is_put_through(tmp_path: Path) -> None:
    profile = load_profile(ROOT / "agent.yaml")
    scenario = EvalScenario.model_validate({
        "name": "local_call",
        "turns": [
            {"say": "Can I book a check-up on Tuesday at 10 am?",
             "expect": {"tool": "book_appointment", "args": {"day": "tuesday", "time": "10:00"},
                        "appointment": {"day": "tuesday", "time": "10:00",
                                        "service": "check-up"},
                        "fact": ["booked", "10 am"]}},
            {"say": "Thanks. Can I speak to a real person now?",
             "expect": {"tool": "transfer_to_person", "transfer": True}},
        ]})
    report = await run_audio_eval(Settings(), profile, [scenario], today=date(2026, 11, 30),
                                  db_dir=tmp_path)
    (call,) = report.setup["calls"]
    assert call["end_reason"] == "transferred", call
    assert call["transfers"] == ["+441134960000"]
    assert [t.misses for t in report.turns] == [[], []], [
        (t.observed.heard, t.observed.reply) for t in report.turns]
    first = report.turns[0].observed
    assert "tuesday" in first.heard.lower()  # what whisper heard, not the script
    assert first.e2e_s is not None and first.e2e_s < 5.0
