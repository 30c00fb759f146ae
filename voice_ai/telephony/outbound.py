"""Outbound calls: check the destination, create the room, have LiveKit SIP dial into it.

Only numbers under ``OUTBOUND_ALLOWED_PREFIXES`` are dialled; with none configured every
outbound call is refused, so a leaked calls-API token cannot run up premium-rate calls.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import aiohttp
from livekit import api
from livekit.protocol.room import CreateRoomRequest
from livekit.protocol.sip import CreateSIPParticipantRequest

from voice_ai.config import Settings
from voice_ai.telephony.phone import mask_phone, parse_e164, redact_numbers

__all__ = [
    "DestinationNotAllowed",
    "DialError",
    "OutboundCall",
    "check_destination",
    "dial_out",
    "new_room_name",
]

# An empty room closes this many seconds after creation if the callee never answers.
_EMPTY_ROOM_TIMEOUT_S = 120
_RINGING_TIMEOUT_S = 40


class DialError(Exception):
    """LiveKit refused or could not place the call. The message holds no phone number."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DestinationNotAllowed(Exception):
    """The number is not under ``OUTBOUND_ALLOWED_PREFIXES`` (or none is configured). The
    message holds the masked number only."""


def check_destination(number: str, allowed_prefixes: tuple[str, ...]) -> None:
    """Raise ``DestinationNotAllowed`` unless ``number`` (canonical E.164) starts with one of
    ``allowed_prefixes``."""
    if not allowed_prefixes:
        raise DestinationNotAllowed(
            "outbound calls are disabled: set OUTBOUND_ALLOWED_PREFIXES (e.g. +49,+4420) to the "
            "E.164 prefixes this system may dial")
    if not number.startswith(allowed_prefixes):
        raise DestinationNotAllowed(
            f"{mask_phone(number)} is not under OUTBOUND_ALLOWED_PREFIXES "
            f"({','.join(allowed_prefixes)})")


@dataclass(frozen=True, slots=True)
class OutboundCall:
    room: str
    participant_identity: str
    sip_call_id: str
    to_masked: str


def new_room_name(prefix: str = "call-out-") -> str:
    """A fresh room name; the random part never contains a phone number."""
    return f"{prefix}{secrets.token_hex(6)}"


def _caller_identity(room: str) -> str:
    # Set explicitly: LiveKit's default identity embeds the dialled number.
    return f"sip-{room}"


async def dial_out(
    lk: api.LiveKitAPI, settings: Settings, to: str, trunk_id: str, *, room: str | None = None
) -> OutboundCall:
    """``CreateRoom`` then ``CreateSIPParticipant`` on ``trunk_id`` (an outbound trunk).

    Returns once LiveKit accepted the dial (the phone is ringing); the agent waits in the room
    for the callee. Raises ``InvalidPhoneNumber`` for a bad ``to``, ``DestinationNotAllowed``
    outside ``OUTBOUND_ALLOWED_PREFIXES`` and ``DialError`` when LiveKit refuses or cannot be
    reached.
    """
    number = parse_e164(to)
    check_destination(number, settings.outbound_prefixes)
    if not trunk_id.strip():
        raise ValueError("trunk_id must not be empty")
    room_name = room or new_room_name()
    identity = _caller_identity(room_name)
    request = CreateSIPParticipantRequest(
        sip_trunk_id=trunk_id,
        sip_call_to=number,
        room_name=room_name,
        participant_identity=identity,
        participant_name="callee",
        ringing_timeout={"seconds": _RINGING_TIMEOUT_S},
        max_call_duration={"seconds": int(settings.max_call_duration_s)},
    )
    try:
        await lk.room.create_room(
            CreateRoomRequest(name=room_name, empty_timeout=_EMPTY_ROOM_TIMEOUT_S)
        )
        info = await lk.sip.create_sip_participant(request)
    except api.ServerError as e:
        reason = redact_numbers(f"{e.code}: {e.message}")
        raise DialError(f"LiveKit refused the call: {reason}", status=e.status) from None
    except (aiohttp.ClientError, TimeoutError) as e:
        raise DialError(f"LiveKit is unreachable: {type(e).__name__}") from None
    return OutboundCall(
        room=room_name,
        participant_identity=info.participant_identity or identity,
        sip_call_id=info.sip_call_id,
        to_masked=mask_phone(number),
    )
