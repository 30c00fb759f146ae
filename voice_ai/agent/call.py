"""The receptionist for one call: profile, book and the call's own transport wired together.

``receptionist_factory(profile, book)`` gives the agent factory the call runtime calls once per
call; ``receptionist_settings`` makes the call greet with the profile's greeting.
"""

from __future__ import annotations

from livekit.agents import Agent

from voice_ai.agent.actions import TransportCallActions
from voice_ai.agent.booking import AppointmentBook
from voice_ai.agent.profile import BusinessProfile
from voice_ai.agent.receptionist import ReceptionistAgent, build_receptionist, business_clock
from voice_ai.config import Settings
from voice_ai.pipeline.transport import CallTransport

__all__ = ["receptionist_for_call", "receptionist_settings"]


def receptionist_for_call(settings: Settings, profile: BusinessProfile, book: AppointmentBook,
                          *, call_id: str, transport: CallTransport) -> ReceptionistAgent:
    """One call's agent: its tools book into ``book`` and act on ``transport``."""
    return build_receptionist(profile, book, TransportCallActions(transport), call_id=call_id,
                              now=business_clock(profile, settings.agent_today))


def receptionist_settings(settings: Settings, profile: BusinessProfile) -> Settings:
    """``settings`` with the profile's greeting (what ``CallSession`` says first)."""
    return settings.model_copy(update={"greeting": profile.greeting})


def as_agent(agent: ReceptionistAgent) -> Agent:
    return agent
