"""The checkpoint a call leaves after each turn: what it holds, that it stays small, that an
unknown version is refused, and the chat context (with a booking in progress) round trip."""

from __future__ import annotations

import json

import pytest
from livekit.agents import llm

from voice_ai.pipeline.checkpoint import (
    CHECKPOINT_VERSION,
    CallCheckpoint,
    ChatEntry,
    CheckpointError,
    SavedCheckpoint,
    bridging_line,
    decode,
    seal,
)
from voice_ai.pipeline.restore import Checkpointer, ResumePlan, chat_context, chat_entries
from voice_ai.records import TurnTimings

pytestmark = pytest.mark.unit


def _booking_ctx() -> llm.ChatContext:
    """A receptionist mid-booking: the caller asked, the agent checked the book and asked
    for a time."""
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content="You are Joe.")
    ctx.add_message(role="user", content="I'd like a cleaning on Tuesday.")
    ctx.items.append(llm.FunctionCall(call_id="call_1", name="find_free_slots",
                                      arguments='{"day": "Tuesday"}'))
    ctx.items.append(llm.FunctionCallOutput(call_id="call_1", name="find_free_slots",
                                            output="10:00, 11:30", is_error=False))
    ctx.add_message(role="assistant", content="Tuesday has 10:00 or 11:30. Which suits you?")
    return ctx


def _checkpoint(**changes: object) -> CallCheckpoint:
    values: dict[str, object] = {
        "call_id": "c1", "saved_at": 1000.0, "turn_count": 1, "started_at": 990.0,
        "chat": chat_entries(_booking_ctx()),
        "turns": (TurnTimings(index=0, ended_speaking_at=995.0, e2e_s=0.61,
                              stt_provider="deepgram", llm_provider="openai",
                              tts_provider="cartesia", user_text="I'd like a cleaning",
                              agent_text="Tuesday has 10:00 or 11:30."),),
        "llm_provider": "openai", "transport": "LineTransport", "setup_s": 0.4}
    values.update(changes)
    return CallCheckpoint(**values)  # type: ignore[arg-type]  # test values by name


def test_a_checkpoint_round_trips_and_says_what_it_holds() -> None:
    cp = _checkpoint()
    saved = seal(cp, 64_000)
    assert (saved.call_id, saved.turn_count, saved.version) == ("c1", 1, CHECKPOINT_VERSION)
    assert decode(saved, call_id="c1") == cp
    assert cp.last_user_text == "I'd like a cleaning on Tuesday."


def test_the_booking_in_progress_survives_the_chat_context_round_trip() -> None:
    entries = chat_entries(_booking_ctx())
    assert [e.kind for e in entries] == ["message", "function_call", "function_call_output",
                                         "message"]  # the instructions are left out
    restored = chat_context(decode(seal(_checkpoint(chat=entries), 64_000)).chat)
    items = restored.items
    assert [i.type for i in items] == ["message", "function_call", "function_call_output",
                                       "message"]
    call, output = items[1], items[2]
    assert isinstance(call, llm.FunctionCall) and isinstance(output, llm.FunctionCallOutput)
    assert (call.name, call.arguments, output.call_id, output.output) == (
        "find_free_slots", '{"day": "Tuesday"}', "call_1", "10:00, 11:30")
    assert chat_entries(restored) == entries


def test_an_unknown_version_is_refused_with_the_versions_it_reads() -> None:
    body = json.loads(seal(_checkpoint(), 64_000).data)
    body["version"] = CHECKPOINT_VERSION + 1
    with pytest.raises(CheckpointError, match=rf"version {CHECKPOINT_VERSION + 1} is not "
                                              rf"supported.*reads version\(s\) \[1\]"):
        decode(json.dumps(body).encode())


@pytest.mark.parametrize(("data", "problem"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps({"version": 1, "call_id": "c1"}).encode(), "malformed checkpoint"),
])
def test_a_malformed_checkpoint_says_so(data: bytes, problem: str) -> None:
    with pytest.raises(CheckpointError, match=problem):
        decode(data)


def test_another_calls_checkpoint_is_refused() -> None:
    with pytest.raises(CheckpointError, match="checkpoint of call c1 offered to call c2"):
        decode(seal(_checkpoint(), 64_000), call_id="c2")


def test_a_long_call_stays_under_the_limit_and_keeps_its_recent_turns_whole() -> None:
    chat: list[ChatEntry] = []
    turns = []
    for i in range(120):  # a long call with chatty turns and tool calls
        chat.append(ChatEntry("message", role="user", text=f"caller line {i} " + "x" * 400))
        chat.append(ChatEntry("function_call", name="find_free_slots",
                              arguments='{"day": "Tuesday"}', call_id=f"call_{i}"))
        chat.append(ChatEntry("function_call_output", name="find_free_slots",
                              text="y" * 300, call_id=f"call_{i}"))
        chat.append(ChatEntry("message", role="assistant", text=f"reply {i} " + "z" * 400))
        turns.append(TurnTimings(index=i, ended_speaking_at=float(i), e2e_s=0.5,
                                 user_text="u" * 200, agent_text="a" * 200))
    cp = _checkpoint(chat=tuple(chat), turns=tuple(turns), turn_count=120)
    saved = seal(cp, 65_536)
    assert len(saved.data) <= 65_536
    back = decode(saved)
    assert back.turn_count == 120 and len(back.turns) == 120  # every turn's timings kept
    assert back.chat[-4:] == tuple(chat[-4:])  # the last turn whole
    assert back.chat[0].kind == "message" and back.chat[0].role == "user"
    outputs = {e.call_id for e in back.chat if e.kind == "function_call_output"}
    assert outputs <= {e.call_id for e in back.chat if e.kind == "function_call"}


def test_a_checkpoint_that_cannot_fit_is_refused() -> None:
    huge = ChatEntry("message", role="user", text="w" * 50_000)
    with pytest.raises(CheckpointError, match=r"bytes after trimming \(CHECKPOINT_MAX_BYTES"):
        seal(_checkpoint(chat=(huge,)), 8_192)


def test_the_checkpointer_hands_on_sealed_checkpoints_and_skips_one_too_large() -> None:
    sink: list[SavedCheckpoint] = []
    resumed = ResumePlan(_checkpoint(resumes=1), bridging=True)
    keeper = Checkpointer(call_id="c1", started_at=990.0, warm=True, transport="LineTransport",
                          max_bytes=8_192, sink=sink.append, resume=resumed, clock=lambda: 2000.0)
    keeper.set_setup(3.0)  # a resumed call keeps its first setup time
    keeper.save(_booking_ctx(), resumed.turns)
    big = llm.ChatContext.empty()
    big.add_message(role="user", content="w" * 50_000)
    keeper.save(big, resumed.turns)
    assert len(sink) == 1 and keeper.saved == 1
    cp = decode(sink[0])
    assert (cp.resumes, cp.setup_s, cp.saved_at, cp.llm_provider) == (2, 0.4, 2000.0, "openai")


def test_newer_checkpoints_win() -> None:
    old = SavedCheckpoint("c1", 2, 10.0, 1, b"{}")
    assert SavedCheckpoint("c1", 3, 9.0, 1, b"{}").newer_than(old)
    assert not SavedCheckpoint("c1", 1, 20.0, 1, b"{}").newer_than(old)
    assert old.newer_than(None)


@pytest.mark.parametrize(("last_words", "line"), [
    ("What are your opening hours on Friday?",
     "Sorry, I lost you for a second — you were asking what are our opening hours on Friday."),
    ("Hi, I would like to book an appointment for Tuesday morning.",
     "Sorry, I lost you for a second — you were saying you would like to book an appointment "
     "for Tuesday morning."),
    ("Can you tell me the price of a cleaning and whether my insurance covers it?",
     "Sorry, I lost you for a second — you were asking can I tell you the price of a cleaning "
     "and whether your…"),
    ("", "Sorry, I lost you for a second. I'm back now — how can I help?"),
])
def test_the_bridging_line_says_where_the_call_was(last_words: str, line: str) -> None:
    chat = (ChatEntry("message", role="user", text=last_words),) if last_words else ()
    assert bridging_line(_checkpoint(chat=chat)) == line
    assert bridging_line(None) == "Sorry, I lost you for a second. I'm back now — how can I help?"
