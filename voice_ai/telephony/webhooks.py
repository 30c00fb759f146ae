"""LiveKit webhooks: verify the signature, then turn the event into one of ours.

    WebhookError
    ├── WebhookAuthError      missing/invalid token or body hash mismatch   -> HTTP 401
    └── WebhookPayloadError   signed correctly but not a usable event       -> HTTP 400

Verification is livekit-api's ``WebhookReceiver``: the ``Authorization`` header carries a JWT
signed with our API secret whose ``sha256`` claim is the hash of the body. Only a verified body
is parsed. The events we act on:

- ``participant_joined`` by a SIP participant -> ``SipCallArrived`` (admit the call)
- ``participant_left`` -> ``ParticipantLeft`` (the call actor sees this itself; informational)
- anything else -> ``Ignored(event_type)``
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format
from livekit import api
from livekit.protocol import models

from voice_ai.config import Settings
from voice_ai.telephony.credentials import livekit_credentials
from voice_ai.telephony.phone import mask_phone

__all__ = [
    "Ignored",
    "ParticipantLeft",
    "SipCallArrived",
    "WebhookAuthError",
    "WebhookError",
    "WebhookEvent",
    "WebhookPayloadError",
    "verify_and_parse",
]

# Attribute LiveKit SIP sets on the caller's participant (the remote party's number).
SIP_PHONE_ATTRIBUTE = "sip.phoneNumber"


class WebhookError(Exception):
    """A webhook we refuse. The message is safe to return to the sender."""


class WebhookAuthError(WebhookError):
    """Missing or invalid signature: nothing in the body is trusted."""


class WebhookPayloadError(WebhookError):
    """Correctly signed, but not JSON or not a LiveKit webhook event."""


@dataclass(frozen=True, slots=True)
class SipCallArrived:
    room: str
    participant_identity: str
    caller_masked: str
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class ParticipantLeft:
    room: str
    participant_identity: str
    is_sip: bool


@dataclass(frozen=True, slots=True)
class Ignored:
    event_type: str


WebhookEvent = SipCallArrived | ParticipantLeft | Ignored


def _bearer(auth_header: str | None) -> str:
    token = (auth_header or "").strip()
    if token.lower().startswith("bearer "):  # LiveKit sends the bare JWT; accept both forms
        token = token[len("bearer ") :].strip()
    if not token:
        raise WebhookAuthError("missing Authorization header")
    return token


def _receive(body: str, token: str, settings: Settings) -> api.WebhookEvent:
    creds = livekit_credentials(settings)
    receiver = api.WebhookReceiver(api.TokenVerifier(creds.api_key, creds.api_secret))
    try:
        return receiver.receive(body, token)
    except json_format.ParseError as e:
        raise WebhookPayloadError(f"webhook body is not a LiveKit event: {e}") from None
    except Exception:  # jwt errors, "hash mismatch": all mean "not from LiveKit"
        raise WebhookAuthError("invalid webhook signature") from None


def _to_domain(event: api.WebhookEvent) -> WebhookEvent:
    kind = event.event
    if not kind:
        raise WebhookPayloadError("webhook has no event type")
    if kind not in ("participant_joined", "participant_left"):
        return Ignored(kind)
    room, who = event.room.name, event.participant
    if not room or not who.identity:
        raise WebhookPayloadError(f"{kind} webhook needs room.name and participant.identity")
    is_sip = who.kind == models.ParticipantInfo.Kind.SIP
    if kind == "participant_left":
        return ParticipantLeft(room, who.identity, is_sip)
    if not is_sip:
        return Ignored(kind)
    caller = mask_phone(who.attributes.get(SIP_PHONE_ATTRIBUTE, ""))
    return SipCallArrived(room, who.identity, caller, event.id)


def verify_and_parse(body: str, auth_header: str | None, settings: Settings) -> WebhookEvent:
    """Verify a webhook and return our event. Raises ``WebhookAuthError`` before reading the
    body when the signature is wrong, ``WebhookPayloadError`` for signed nonsense, and
    ``ConfigError`` when LiveKit credentials are not configured."""
    token = _bearer(auth_header)
    return _to_domain(_receive(body, token, settings))
