"""The receptionist: business profile, function tools, the local answering engine, the eval.

    profile.py       agent.yaml, validated (ProfileError: one line per problem)
    when.py          days and times as callers say them
    booking.py       the appointment book port (+ in-memory and in-process SQLite books)
    desk.py          hours, free slots, book / cancel / move, as sentences for the caller
    actions.py       the call actions port: transfer, DTMF, hang up
    tools.py         the @function_tools (every LLM path)
    router.py        deterministic routing of what the caller said to a tool or a reply
    engine.py        ReceptionistLLM: the embedded default, a livekit llm.LLM over the router
    receptionist.py  the livekit Agent with instructions and tools
"""

from voice_ai.agent.actions import CallAction, CallActions, RecordingCallActions
from voice_ai.agent.booking import AppointmentBook, InMemoryAppointmentBook, LocalAppointmentBook
from voice_ai.agent.engine import ReceptionistLLM
from voice_ai.agent.profile import BusinessProfile, ProfileError, load_profile
from voice_ai.agent.receptionist import (
    ReceptionistAgent,
    build_receptionist,
    business_clock,
    instructions_for,
)
from voice_ai.agent.tools import TOOL_NAMES, ReceptionistTools

__all__ = [
    "TOOL_NAMES",
    "AppointmentBook",
    "BusinessProfile",
    "CallAction",
    "CallActions",
    "InMemoryAppointmentBook",
    "LocalAppointmentBook",
    "ProfileError",
    "ReceptionistAgent",
    "ReceptionistLLM",
    "ReceptionistTools",
    "RecordingCallActions",
    "build_receptionist",
    "business_clock",
    "instructions_for",
    "load_profile",
]
