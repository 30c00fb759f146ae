"""Join tokens for the agent: one room, the agent's identity, a short life."""

from __future__ import annotations

from datetime import timedelta

from livekit import api

from voice_ai.config import Settings
from voice_ai.telephony.credentials import livekit_credentials

__all__ = ["mint_agent_token"]


def mint_agent_token(settings: Settings, room: str) -> str:
    """A JWT that lets the agent join ``room`` (and no other) for ``LIVEKIT_TOKEN_TTL_S``.

    The grants are the least a call needs: join, publish audio, subscribe, publish data
    (transcripts). No room admin: removing the caller goes through the server API instead.
    """
    if not room:
        raise ValueError("room must be a non-empty room name")
    creds = livekit_credentials(settings)
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        can_publish_sources=["microphone"],
        agent=True,
    )
    return (
        api.AccessToken(creds.api_key, creds.api_secret)
        .with_identity(settings.agent_identity)
        .with_name(settings.agent_identity)
        .with_kind("agent")
        .with_grants(grants)
        .with_ttl(timedelta(seconds=settings.livekit_token_ttl_s))
        .to_jwt()
    )
