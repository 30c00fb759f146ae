"""The receptionist: a livekit ``Agent`` with the business's instructions and tools.

``instructions_for`` writes the profile into the system prompt a cloud LLM reads (the local
engine reads the profile itself); ``build_receptionist`` wires one call's agent from the
profile, the appointment book and the call's actions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time

from livekit.agents import Agent

from voice_ai.agent.actions import CallActions
from voice_ai.agent.booking import AppointmentBook
from voice_ai.agent.desk import FrontDesk, week_summary
from voice_ai.agent.profile import BusinessProfile
from voice_ai.agent.tools import ReceptionistTools

__all__ = ["ReceptionistAgent", "build_receptionist", "business_clock", "instructions_for"]

TOOL_ERROR_HINT = ("When a tool returns an error, apologise in one sentence, say what went "
                   "wrong, and offer to put the caller through to a colleague. Never leave a "
                   "turn without speaking.")
FIXED_DAY_TIME = time(7, 0)
"""With a fixed ``AGENT_TODAY`` the clock reads this time of day: every slot is still ahead."""


def instructions_for(p: BusinessProfile) -> str:
    services = "; ".join(
        f"{s.name}: {s.price_note + ' ' if s.price_note else ''}{s.price:g} {p.currency}"
        for s in p.services)
    faq = " ".join(f"Q: {f.question} A: {f.answer}" for f in p.faq)
    holidays = ", ".join(f"{h.name} ({h.date.isoformat()})" for h in p.holidays) or "none"
    rules = p.booking
    lunch = (f" No appointments {rules.lunch_break[0]:%H:%M}-{rules.lunch_break[1]:%H:%M}."
             if rules.lunch_break else "")
    return (
        f"You are {p.agent_name}, the phone receptionist of {p.name}. Reply in the language "
        f"{p.language}. "
        "Answer in one or two short sentences, only with facts given here or returned by a "
        "tool; if you do not know, say so and offer to put the caller through to a colleague. "
        f"Address: {p.address}. Directions: {p.directions} "
        f"Opening hours: {week_summary(p)} Closed on holidays: {holidays}. "
        f"Services and prices: {services}. {faq} "
        f"Appointments last {rules.slot_minutes} minutes and can be booked up to "
        f"{rules.days_ahead} days ahead.{lunch} "
        "Use the tools: get_opening_hours for a given day, find_free_slots before offering "
        "times, book_appointment / cancel_appointment / move_appointment to change the book "
        "(times as HH:MM, 24 h), transfer_to_person when the caller asks for a person, "
        "end_call when the caller says goodbye, send_dtmf to press keys in a phone menu. "
        + TOOL_ERROR_HINT
    )


def business_clock(profile: BusinessProfile, today: date | None = None
                   ) -> Callable[[], datetime]:
    """Local time at the business; with ``today`` a fixed day (evals, demos)."""
    if today is not None:
        fixed = datetime.combine(today, FIXED_DAY_TIME)
        return lambda: fixed
    zone = profile.zone
    return lambda: datetime.now(zone).replace(tzinfo=None)


class ReceptionistAgent(Agent):
    def __init__(self, profile: BusinessProfile, tools: ReceptionistTools) -> None:
        super().__init__(instructions=instructions_for(profile), tools=tools.all())
        self.profile = profile
        self.receptionist_tools = tools


def build_receptionist(
    profile: BusinessProfile,
    book: AppointmentBook,
    actions: CallActions,
    *,
    call_id: str = "",
    now: Callable[[], datetime] | None = None,
) -> ReceptionistAgent:
    desk = FrontDesk(profile, book, now=now or business_clock(profile), call_id=call_id)
    return ReceptionistAgent(profile, ReceptionistTools(desk, actions))
