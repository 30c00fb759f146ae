"""The call record's turns: which provider served each stage of each turn, from the stages'
``served`` events and the chat items livekit adds, in the order a loaded machine gives them."""

from __future__ import annotations

import pytest
from livekit.agents.llm import ChatMessage

from voice_ai.config import Settings
from voice_ai.pipeline.session import _TurnBuilder
from voice_ai.records import TurnTimings
from voice_ai.resilience.served import Served

pytestmark = pytest.mark.unit


def _message(role: str, text: str) -> ChatMessage:
    return ChatMessage(role=role, content=[text])  # type: ignore[arg-type]


def _providers(turn: TurnTimings) -> tuple[str, str, str, bool]:
    return turn.stt_provider, turn.llm_provider, turn.tts_provider, turn.fallback_used


def test_each_turn_keeps_the_stt_that_heard_it_when_the_next_line_is_heard_early() -> None:
    # the caller's second line is transcribed (its "served" event) before the first reply has
    # finished playing and joined the chat: the fallback suite of 2026-11-30 22:51 recorded
    # that second turn with no STT provider at all
    turns: list[TurnTimings] = []
    builder = _TurnBuilder(Settings(), lambda: [], turns.append)
    builder.on_served(Served("stt", "whisper", fallback=True))
    builder.add(_message("user", "i would like an appointment"))
    builder.on_served(Served("llm", "local", fallback=True))
    builder.on_served(Served("tts", "piper", fallback=True))
    builder.on_served(Served("stt", "deepgram", fallback=False))  # line 2, heard early
    builder.add(_message("assistant", "Tuesday at ten?"))
    builder.add(_message("user", "thank you very much"))
    builder.on_served(Served("llm", "openai", fallback=False))
    builder.on_served(Served("tts", "cartesia", fallback=False))
    builder.add(_message("assistant", "Goodbye."))

    assert [_providers(t) for t in turns] == [("whisper", "local", "piper", True),
                                              ("deepgram", "openai", "cartesia", False)]
    assert [t.user_text for t in turns] == ["i would like an appointment", "thank you very much"]


def test_a_turn_split_into_two_finals_keeps_its_stt_and_a_reply_alone_closes_nothing() -> None:
    turns: list[TurnTimings] = []
    builder = _TurnBuilder(Settings(), lambda: [], turns.append)
    builder.on_served(Served("tts", "piper", fallback=False))  # the greeting: no turn
    builder.add(_message("assistant", "Hello, how can I help?"))
    builder.on_served(Served("stt", "whisper", fallback=False))
    builder.add(_message("user", "are you open"))
    builder.add(_message("user", "on friday"))  # the VAD split the line; no second "served"
    builder.on_served(Served("llm", "local", fallback=False))
    builder.add(_message("assistant", "Yes, nine to five."))

    assert [_providers(t) for t in turns] == [("whisper", "local", "piper", False)]
    assert turns[0].user_text == "are you open on friday"
