"""The receptionist for each call: the agent factory the call runtime is given.

``receptionist_factory(profile, book)`` makes, per call, a ``ReceptionistAgent`` whose tools
book into ``book`` and act on that call's own transport (transfer, DTMF, hang-up);
``receptionist_settings`` makes the call greet with the profile's greeting.
"""

from __future__ import annotations

from livekit.agents import Agent

from voice_ai.agent.actions import TransportCallActions
from voice_ai.agent.booking import AppointmentBook
from voice_ai.agent.profile import BusinessProfile
from voice_ai.agent.receptionist import build_receptionist, business_clock
from voice_ai.config import Settings
from voice_ai.pipeline.session import AgentContext, AgentFactory

__all__ = ["receptionist_factory", "receptionist_settings"]


def receptionist_factory(profile: BusinessProfile, book: AppointmentBook) -> AgentFactory:
    def make(ctx: AgentContext) -> Agent:
        return build_receptionist(profile, book, TransportCallActions(ctx.transport),
                                  call_id=ctx.call_id,
                                  now=business_clock(profile, ctx.settings.agent_today))

    return make


def receptionist_settings(settings: Settings, profile: BusinessProfile) -> Settings:
    """``settings`` with the profile's greeting (what ``CallSession`` says first)."""
    return settings.model_copy(update={"greeting": profile.greeting})
