"""The receptionist on the OpenAI path: the real ``openai.LLM`` plugin against the simulator,
scripted to stream tool calls as OpenAI does; AgentSession runs the receptionist's tools."""

from __future__ import annotations

import json
from datetime import date, time
from pathlib import Path

import pytest
from livekit.agents import AgentSession
from livekit.plugins import openai  # register on the main thread

from voice_ai.agent import (
    TOOL_NAMES,
    InMemoryAppointmentBook,
    RecordingCallActions,
    build_receptionist,
    business_clock,
    load_profile,
)
from voice_ai.providers.cloud.tool_schemas import SchemaCachingLLM
from voice_ai.simulators import ProviderSimulators, ScriptedReply, ToolCall

pytestmark = pytest.mark.integration

PROFILE = load_profile(Path(__file__).resolve().parent.parent / "agent.yaml")
MONDAY = date(2026, 11, 30)


async def _call(lines: list[str], script: list[ScriptedReply | str],
                model_cls: type[openai.LLM] = SchemaCachingLLM,
                ) -> tuple[ProviderSimulators, InMemoryAppointmentBook, list[str]]:
    book = InMemoryAppointmentBook()
    agent = build_receptionist(PROFILE, book, RecordingCallActions(), call_id="oai-1",
                               now=business_clock(PROFILE, MONDAY))
    replies = []
    async with ProviderSimulators("zero") as sims:
        sims.openai.script(*script)
        model = model_cls(model="gpt-4o-mini", api_key="sk-test", base_url=sims.openai.api_url)
        async with AgentSession(llm=model) as session:
            await session.start(agent)
            for line in lines:
                result = await session.run(user_input=line)
                replies.append(" ".join(ev.item.text_content or "" for ev in result.events
                                        if ev.type == "message"))
        return sims, book, replies


BOOKING = json.dumps({"day": "tuesday", "time": "10:00", "service": "check-up"})


@pytest.mark.parametrize("model_cls", [openai.LLM, SchemaCachingLLM])
async def test_openai_tool_calls_book_through_the_receptionists_tools(
        model_cls: type[openai.LLM]) -> None:
    sims, book, replies = await _call(
        ["Can I book a check-up on Tuesday at ten?"],
        [ScriptedReply(tool_calls=(ToolCall("book_appointment", BOOKING, call_id="call_1"),)),
         "You're booked for Tuesday at 10 am."], model_cls)
    first, second = sims.openai.chat_requests
    assert sorted(first.tool_names) == sorted(TOOL_NAMES)  # every tool offered to the model
    system = first.messages[0]["content"]
    assert "14 Harbour Street" in system and "45 pounds" in system  # the profile's facts
    assert "+44" not in json.dumps(first.body)  # the transfer number never goes to the model
    tool_msg = next(m for m in second.messages if m.get("role") == "tool")
    assert tool_msg["content"] == ("You are booked in for a check-up tomorrow, Tuesday "
                                   "1 December at 10 am.")
    (row,) = book.rows.values()
    assert (row.day, row.start, row.call_id) == (date(2026, 12, 1), time(10, 0), "oai-1")
    assert replies == ["You're booked for Tuesday at 10 am."]


async def test_the_cached_schemas_are_the_ones_the_plugin_sends() -> None:
    script: list[ScriptedReply | str] = ["Hello."]
    plain, _, _ = await _call(["Hi."], script, openai.LLM)
    cached, _, _ = await _call(["Hi."], script, SchemaCachingLLM)
    (sent_cached, *_), (sent_plain, *_) = cached.openai.chat_requests, plain.openai.chat_requests
    assert sent_cached.body["tools"] == sent_plain.body["tools"]


async def test_a_refused_booking_reaches_the_model_as_the_reason() -> None:
    args = json.dumps({"day": "sunday", "time": "10:00"})
    sims, book, _ = await _call(
        ["Book me in on Sunday at ten."],
        [ScriptedReply(tool_calls=(ToolCall("book_appointment", args),)),
         "Sorry, we're closed on Sundays. Shall I put you through to a colleague?"])
    tool_msg = next(m for m in sims.openai.chat_requests[1].messages if m.get("role") == "tool")
    assert "closed on Sundays" in tool_msg["content"]
    assert not book.rows
