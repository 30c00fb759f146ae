"""LiveKit webhooks: verify the signature and freshness, then turn the event into one of ours.

    WebhookError                 .reason is the label of voice_ai_webhooks_rejected_total
    ├── WebhookAuthError      missing/invalid/expired token, body hash mismatch,
    │                         createdAt outside the tolerance                       -> HTTP 401
    └── WebhookPayloadError   signed correctly but not a usable event               -> HTTP 400

Verification is livekit-api's ``WebhookReceiver``: the ``Authorization`` header carries a JWT
signed with our API secret whose ``sha256`` claim is the hash of the body (LiveKit signs each
webhook for 5 minutes). Only a verified body is parsed. Then its ``createdAt`` must lie within
``WEBHOOK_TOLERANCE_S`` in the past and ``FUTURE_SKEW_S`` in the future. A verified event
carries ``valid_until``: after that moment a replay of it is refused by these checks alone, so
a replay guard (``voice_ai.telephony.replay``) need remember its id only until then.

The events we act on:

- ``participant_joined`` by a SIP participant -> ``SipCallArrived`` (admit the call)
- ``participant_left`` -> ``ParticipantLeft`` (the call actor sees this itself; informational)
- anything else -> ``Ignored(event_type)``
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jwt
from google.protobuf import json_format
from livekit import api
from livekit.protocol import models

from voice_ai.config import Settings
from voice_ai.telephony.credentials import livekit_credentials
from voice_ai.telephony.phone import mask_phone, redact_numbers
from voice_ai.telephony.rejections import RejectReason, WebhookRejections

__all__ = [
    "FUTURE_SKEW_S",
    "Ignored",
    "ParticipantLeft",
    "RejectReason",
    "SipCallArrived",
    "WebhookAuthError",
    "WebhookError",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookRejections",
    "verify_and_parse",
]

# Attribute LiveKit SIP sets on the caller's participant (the remote party's number).
SIP_PHONE_ATTRIBUTE = "sip.phoneNumber"
# Clock skew allowed between LiveKit and us, both for the token (livekit-api's verifier) and
# for a createdAt in the future.
FUTURE_SKEW_S = 60.0
# A LiveKit webhook token is a few hundred bytes; anything much longer is not one.
_MAX_TOKEN_CHARS = 4096
# Rooms our dispatch rules and the calls API create: "call-_+15550100067_Ab3x", "call-out-9f2c".
# Anything else (a path, CR/LF, quotes) is refused before it reaches a dispatcher or a log.
_ROOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+.-]{0,127}", re.ASCII)


class WebhookError(Exception):
    """A webhook we refuse. The message is safe to return to the sender (it never holds the
    token or anything from the body)."""

    reason: RejectReason = RejectReason.PAYLOAD

    def __init__(self, message: str, reason: RejectReason | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class WebhookAuthError(WebhookError):
    """Missing, invalid, expired or stale signature: nothing in the body is trusted."""

    reason = RejectReason.SIGNATURE


class WebhookPayloadError(WebhookError):
    """Correctly signed, but not JSON or not a LiveKit webhook event."""

    reason = RejectReason.PAYLOAD


@dataclass(frozen=True, slots=True)
class SipCallArrived:
    room: str
    participant_identity: str
    caller_masked: str
    event_id: str
    valid_until: float = 0.0
    """Epoch seconds after which a replay of this event fails verification by itself."""


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
    if len(token) > _MAX_TOKEN_CHARS:
        raise WebhookAuthError("invalid webhook signature")
    return token


def _receive(body: str, token: str, settings: Settings) -> tuple[api.WebhookEvent, float]:
    """The verified event and the expiry (epoch seconds) of the token that signed it."""
    creds = livekit_credentials(settings)
    verifier = api.TokenVerifier(creds.api_key, creds.api_secret)
    try:
        event = api.WebhookReceiver(verifier).receive(body, token)
    except json_format.ParseError as e:
        detail = redact_numbers(str(e))[:200]  # the parser may quote the body
        raise WebhookPayloadError(f"webhook body is not a LiveKit event: {detail}") from None
    except RecursionError:  # signed, but nested deeper than the JSON parser goes
        raise WebhookPayloadError("webhook body is not a LiveKit event: nested too deep") from None
    except jwt.ExpiredSignatureError:
        raise WebhookAuthError("webhook token expired", RejectReason.EXPIRED) from None
    except jwt.ImmatureSignatureError:
        raise WebhookAuthError("webhook token not valid yet", RejectReason.FUTURE) from None
    except Exception:  # jwt errors, "hash mismatch": all mean "not from LiveKit"
        raise WebhookAuthError("invalid webhook signature") from None
    # verified just above; read back the expiry the verifier checked
    claims = jwt.decode(token, options={"verify_signature": False})
    return event, float(claims["exp"])


def _check_fresh(created_at: int, now: float, tolerance_s: float) -> None:
    if created_at <= 0:
        raise WebhookPayloadError("webhook has no createdAt")
    if created_at < now - tolerance_s:
        raise WebhookAuthError(
            f"webhook is older than WEBHOOK_TOLERANCE_S={tolerance_s:g}s", RejectReason.EXPIRED)
    if created_at > now + FUTURE_SKEW_S:
        raise WebhookAuthError("webhook is dated in the future", RejectReason.FUTURE)


def _to_domain(event: api.WebhookEvent, valid_until: float) -> WebhookEvent:
    kind = event.event
    if not kind:
        raise WebhookPayloadError("webhook has no event type")
    if kind not in ("participant_joined", "participant_left"):
        return Ignored(kind)
    room, who = event.room.name, event.participant
    if not room or not who.identity:
        raise WebhookPayloadError(f"{kind} webhook needs room.name and participant.identity")
    if not _ROOM_NAME.fullmatch(room) or not who.identity.isprintable() or len(
            who.identity) > 256:
        # never echoed: it may hold a number, or bytes meant for a header or a log line
        raise WebhookPayloadError(f"{kind} webhook has a room name or identity a LiveKit SIP "
                                  "room never has (letters, digits, _ + . - only)")
    is_sip = who.kind == models.ParticipantInfo.Kind.SIP
    if kind == "participant_left":
        return ParticipantLeft(room, who.identity, is_sip)
    if not is_sip:
        return Ignored(kind)
    if not event.id:
        raise WebhookPayloadError("participant_joined webhook has no event id")
    caller = mask_phone(who.attributes.get(SIP_PHONE_ATTRIBUTE, ""))
    return SipCallArrived(room, who.identity, caller, event.id, valid_until)


def verify_and_parse(
    body: str, auth_header: str | None, settings: Settings, *, now: float
) -> WebhookEvent:
    """Verify a webhook and return our event.

    Raises ``WebhookAuthError`` when the signature is wrong or stale (before the body is
    parsed), or when ``createdAt`` is outside the tolerance; ``WebhookPayloadError`` for signed
    nonsense; ``ConfigError`` when LiveKit credentials are not configured. ``now`` is the
    current epoch time (injected, so tests need not sleep).
    """
    token = _bearer(auth_header)
    event, expires_at = _receive(body, token, settings)
    _check_fresh(event.created_at, now, settings.webhook_tolerance_s)
    # A replay fails once its token expired (plus the verifier's leeway) or once it is older
    # than the tolerance, whichever comes first.
    valid_until = min(expires_at + FUTURE_SKEW_S, event.created_at + settings.webhook_tolerance_s)
    return _to_domain(event, valid_until)
