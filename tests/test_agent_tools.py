"""The receptionist through livekit's own machinery: AgentSession runs the engine's tool calls.

Text turns (``AgentSession.run``), the in-memory appointment book, recorded call actions, a
fixed business day (Monday 30 November 2026). What is checked is what a caller and the clinic
would see: the reply, the tool that ran with its arguments, the appointment row, the action.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path

import pytest
from livekit.agents import AgentSession

from voice_ai.agent import (
    InMemoryAppointmentBook,
    ReceptionistLLM,
    RecordingCallActions,
    build_receptionist,
    business_clock,
    load_profile,
)
from voice_ai.agent.booking import AppointmentBook
from voice_ai.store.appointments import Appointment, AppointmentStatus

pytestmark = pytest.mark.unit

PROFILE = load_profile(Path(__file__).resolve().parent.parent / "agent.yaml")
MONDAY = date(2026, 11, 30)


@dataclass
class Turn:
    reply: str = ""
    tools: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def talk(lines: list[str], book: AppointmentBook | None = None,
               actions: RecordingCallActions | None = None) -> list[Turn]:
    book = book if book is not None else InMemoryAppointmentBook()
    actions = actions if actions is not None else RecordingCallActions()
    agent = build_receptionist(PROFILE, book, actions, call_id="call-1",
                               now=business_clock(PROFILE, MONDAY))
    turns = []
    async with AgentSession(llm=ReceptionistLLM(PROFILE)) as session:
        await session.start(agent)
        for line in lines:
            result = await session.run(user_input=line)
            turn = Turn()
            for ev in result.events:
                if ev.type == "function_call":
                    turn.tools.append((ev.item.name, json.loads(ev.item.arguments)))
                elif ev.type == "function_call_output" and ev.item.is_error:
                    turn.errors.append(ev.item.output)
                elif ev.type == "message":
                    turn.reply += ev.item.text_content or ""
            turns.append(turn)
    return turns


async def test_hours_prices_address_and_faq_come_from_the_profile() -> None:
    hours, week, sunday, price, address, faq = await talk([
        "Hi, what are your opening hours on Friday?", "When are you open?",
        "Are you open on Sunday?", "How much does teeth whitening cost?",
        "What's your address?", "Do you take new patients?"])
    assert hours.tools == [("get_opening_hours", {"day": "friday"})]
    assert hours.reply == "On Friday 4 December we are open from 8:30 am to 4 pm."
    assert "Monday and Tuesday from 8:30 am to 5:30 pm" in week.reply
    assert sunday.reply == "Sorry, we are closed on Sundays."
    assert price.reply == "A teeth whitening costs 250 pounds." and not price.tools
    assert "14 Harbour Street" in address.reply
    assert faq.reply.startswith("Yes, we are taking new patients")


async def test_booking_over_three_turns_writes_the_appointment() -> None:
    book = InMemoryAppointmentBook()
    ask, slots, booked = await talk([
        "I'd like to book a cleaning please.", "Wednesday afternoon?",
        "Half past two is fine, my name is Anna Smith."], book)
    assert ask.reply == ("Of course, I can book a hygienist cleaning. Which day and time "
                         "would suit you?") and not ask.tools
    assert slots.tools == [("find_free_slots", {"day": "wednesday", "part_of_day": "afternoon"})]
    assert slots.reply.startswith("On Wednesday 2 December in the afternoon I have 12 noon, "
                                  "1:30 pm, 2 pm or 2:30 pm free.")
    assert booked.tools == [("book_appointment", {"day": "wednesday", "time": "14:30",
                                                  "service": "hygienist cleaning",
                                                  "caller_name": "Anna Smith"})]
    assert booked.reply == ("You are booked in for a hygienist cleaning on Wednesday "
                            "2 December at 2:30 pm.")
    (row,) = book.rows.values()
    assert (row.day, row.start, row.service, row.caller_name, row.call_id) == (
        date(2026, 12, 2), time(14, 30), "hygienist cleaning", "Anna Smith", "call-1")


async def test_a_taken_slot_apologises_offers_near_times_and_a_person() -> None:
    book = InMemoryAppointmentBook()
    await book.book(Appointment(day=date(2026, 12, 1), start=time(10, 0), service="check-up"))
    (turn,) = await talk(["Can I book a check-up on Tuesday at 10 am?"], book)
    assert turn.errors
    assert turn.reply.startswith("I am sorry. Sorry, 10 am tomorrow, Tuesday 1 December is "
                                 "already taken. The nearest free times are 9:30 am and 10:30")
    assert turn.reply.endswith("Would you like me to put you through to a colleague?")
    assert len(book.rows) == 1


async def test_closed_days_lunch_and_bad_times_are_refused_with_a_reason() -> None:
    sunday, lunch, late = await talk([
        "Book me in on Sunday at 10.", "Book an appointment on Thursday at 1 pm.",
        "Book an appointment on Friday at 5 pm."])
    assert "closed on Sundays" in sunday.reply
    assert "lunch break" in lunch.reply
    assert "only open from 8:30 am to 4 pm on Fridays" in late.reply
    for turn in (sunday, lunch, late):
        assert turn.errors and "put you through to a colleague" in turn.reply


async def test_cancel_and_move_change_the_book() -> None:
    book = InMemoryAppointmentBook()
    kept = await book.book(Appointment(day=date(2026, 12, 3), start=time(9, 0), service="filling"))
    gone = await book.book(Appointment(day=date(2026, 12, 4), start=time(11, 0),
                                       service="check-up"))
    ask, cancel, move = await talk([
        "I need to cancel my appointment.", "It's on Friday at 11.",
        "Can I move my appointment from Thursday at 9 to Saturday at 10 am?"], book)
    assert ask.reply == "Which day and time is the appointment you would like to cancel?"
    assert cancel.tools == [("cancel_appointment", {"day": "friday", "time": "11:00"})]
    assert book.rows[gone.appointment_id].status is AppointmentStatus.CANCELLED
    assert move.tools == [("move_appointment", {"day": "thursday", "time": "09:00",
                                                "new_day": "saturday", "new_time": "10:00"})]
    moved = book.rows[kept.appointment_id]
    assert (moved.day, moved.start) == (date(2026, 12, 5), time(10, 0))
    assert move.reply == "Done: your appointment is moved to Saturday 5 December at 10 am."


async def test_asking_for_a_person_transfers_after_the_reply() -> None:
    actions = RecordingCallActions()
    (turn,) = await talk(["Can I talk to a real person please?"], actions=actions)
    assert turn.tools == [("transfer_to_person", {})]
    assert turn.reply == "I am putting you through to a colleague now, please hold."
    assert actions.kinds() == ["transfer"]
    assert actions.done[0].detail == PROFILE.transfer_number


async def test_yes_to_the_offer_of_a_person_transfers() -> None:
    actions = RecordingCallActions()
    off, yes = await talk(["What's the weather going to be like?", "Yes please."],
                          actions=actions)
    assert off.reply.endswith("Would you like me to put you through to a colleague?")
    assert yes.tools == [("transfer_to_person", {})] and actions.kinds() == ["transfer"]


async def test_goodbye_ends_the_call_politely_and_menus_get_keys() -> None:
    actions = RecordingCallActions()
    menu, misheard, bye = await talk([
        "For billing press 1, for appointments press 2.",
        "Welcome to Leeds Denville Supplies, for Orders Press 1, for Resetching Press 2.",
        "Thank you very much, goodbye."], actions=actions)
    assert menu.tools == [("send_dtmf", {"digits": "2"})]
    assert misheard.tools == [("send_dtmf", {"digits": "2"})]  # "reception", as whisper wrote it
    assert bye.reply == "Thank you for calling Bright Dental. Goodbye!"
    assert actions.kinds() == ["dtmf", "dtmf", "hang_up"]


async def test_unclear_and_off_topic_lines_get_an_answer_not_silence() -> None:
    mumble, off = await talk(["uh", "Can you recommend a good pizza place?"])
    assert mumble.reply == "Sorry, I did not catch that. Could you say it again?"
    assert off.reply.startswith("Sorry, I can only help with Bright Dental")


class _BrokenBook(InMemoryAppointmentBook):
    async def booked_on(self, day: date) -> list[Appointment]:
        raise ConnectionError("store writer unreachable")


async def test_a_failing_store_is_an_apology_and_an_offer() -> None:
    (turn,) = await talk(["Do you have anything free on Tuesday?"], _BrokenBook())
    assert turn.errors == ["I could not do that just now because of a technical problem."]
    assert turn.reply == ("I am sorry. I could not do that just now because of a technical "
                          "problem. Would you like me to put you through to a colleague?")


class _RefusingActions(RecordingCallActions):
    async def transfer(self, to_number: str) -> None:
        raise RuntimeError("the SIP server refused the transfer")


async def test_a_refused_transfer_is_said_not_left_in_silence() -> None:
    import asyncio

    actions = _RefusingActions()
    agent = build_receptionist(PROFILE, InMemoryAppointmentBook(), actions,
                               now=business_clock(PROFILE, MONDAY))
    async with AgentSession(llm=ReceptionistLLM(PROFILE)) as session:
        await session.start(agent)
        said: list[str] = []
        session.on("conversation_item_added",
                   lambda ev: said.append(getattr(ev.item, "text_content", "") or ""))
        await session.run(user_input="Put me through to a person please.")
        for _ in range(100):  # the apology follows the announcement once it has played
            if any("could not put you through" in s for s in said):
                break
            await asyncio.sleep(0.01)
    assert said[-1] == ("I am sorry, I could not put you through just now. Please call back "
                        "a little later.")


async def test_the_engine_answers_through_the_llm_pool() -> None:
    """ReceptionistLLM hosted in a pool worker (here in memory): the chat context and tool
    schemas cross the pool, the tool call comes back and runs in the call."""
    from voice_ai.providers.host import ProviderHost
    from voice_ai.providers.memory import MemoryPool
    from voice_ai.providers.pool import ProviderPool
    from voice_ai.providers.pooled import PooledLLM

    pool = MemoryPool([ProviderHost("llm", "local", ReceptionistLLM(PROFILE))])
    book = InMemoryAppointmentBook()
    agent = build_receptionist(PROFILE, book, RecordingCallActions(), call_id="pooled",
                               now=business_clock(PROFILE, MONDAY))
    async with AgentSession(llm=PooledLLM(ProviderPool(pool))) as session:
        await session.start(agent)
        result = await session.run(user_input="Can I book a filling on Thursday at 11 am?")
    replies = [ev.item.text_content for ev in result.events if ev.type == "message"]
    assert replies == ["You are booked in for a filling on Thursday 3 December at 11 am."]
    (row,) = book.rows.values()
    assert (row.day, row.start, row.service) == (date(2026, 12, 3), time(11, 0), "filling")


async def test_a_misheard_booking_with_day_and_time_is_still_a_booking() -> None:
    book = InMemoryAppointmentBook()
    (turn,) = await talk(["Can I both could check up on Tuesday at 10 then?"], book)  # whisper
    assert turn.tools == [("book_appointment", {"day": "tuesday", "time": "10:00",
                                                "service": "check-up", "caller_name": ""})]
    assert len(book.rows) == 1
