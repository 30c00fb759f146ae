"""Signalling for a browser call: the SDP offer the page posts and the answer it gets back.

The page gathers its ICE candidates before posting (no trickle), so one offer and one answer
are the whole exchange. An offer is checked completely here, before anything is admitted or
started: a bad one is one ``OfferError`` line that the route returns as 400.

    offer = SdpOffer.parse(body)        # bytes of {"type": "offer", "sdp": "v=0..."}
    answer = await transport.accept()   # SdpAnswer, posted back to the page
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from voice_ai.errors import VoiceAIError

__all__ = ["MAX_OFFER_BYTES", "OfferDecision", "OfferError", "OfferResult", "SdpAnswer",
           "SdpOffer", "TalkCallPort"]

# A browser's audio + data channel offer with its host candidates is 2-6 KiB. Under the Serve
# app's 64 KiB body cap, so an oversized offer gets this module's 400, a huge body a 413.
MAX_OFFER_BYTES = 32 * 1024


class OfferError(VoiceAIError):
    """The posted offer cannot start a call. The message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class SdpOffer:
    """A browser's SDP offer, checked: an audio section with Opus, DTLS and ICE credentials."""

    sdp: str
    type: str = "offer"

    def __post_init__(self) -> None:
        if self.type != "offer":
            raise OfferError(f"type must be 'offer', got {self.type!r}")
        if len(self.sdp.encode()) > MAX_OFFER_BYTES:
            raise OfferError(f"SDP offer is larger than {MAX_OFFER_BYTES} bytes")
        _check_sdp(self.sdp)

    @classmethod
    def parse(cls, body: bytes) -> SdpOffer:
        """The offer in a request body ``{"type": "offer", "sdp": "..."}``."""
        if len(body) > MAX_OFFER_BYTES:
            raise OfferError(f"request body is larger than {MAX_OFFER_BYTES} bytes")
        try:
            payload: Any = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise OfferError('body must be JSON: {"type": "offer", "sdp": "v=0..."}') from None
        if not isinstance(payload, dict):
            raise OfferError('body must be a JSON object: {"type": "offer", "sdp": "v=0..."}')
        sdp, kind = payload.get("sdp"), payload.get("type")
        if not isinstance(sdp, str) or not sdp:
            raise OfferError("sdp must be a non-empty string")
        if not isinstance(kind, str):
            raise OfferError("type must be the string 'offer'")
        return cls(sdp=sdp, type=kind)


@dataclass(frozen=True, slots=True)
class SdpAnswer:
    sdp: str
    type: str = "answer"

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "sdp": self.sdp}


class OfferDecision(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # over MAX_CONCURRENT_CALLS: recorded rejected_busy, page shows why
    FAILED = "failed"  # admitted, but no call actor could answer: recorded as an error


@dataclass(frozen=True, slots=True)
class OfferResult:
    """What the dispatcher answers to a browser's offer. ``answer`` is set when accepted."""

    decision: OfferDecision
    call_id: str
    answer: SdpAnswer | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if (self.decision is OfferDecision.ACCEPTED) != (self.answer is not None):
            raise ValueError("an accepted offer carries an answer, and only an accepted one")


class TalkCallPort(Protocol):
    """Admits a browser call like any other (limits, busy path) and has a call actor answer
    it. The Ray dispatcher implements it; tests use an in-process one."""

    async def offer_call(self, offer: SdpOffer) -> OfferResult: ...


def _check_sdp(sdp: str) -> None:
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError("SDP offer must start with 'v=0'")
    from aiortc.sdp import SessionDescription  # 0.6 s of imports: only where offers arrive

    try:
        session = SessionDescription.parse(sdp)
    except Exception as e:  # the parser raises whatever a bad line trips (Value/Index/Key...)
        raise OfferError(f"SDP offer could not be parsed ({type(e).__name__})") from None
    audio = [m for m in session.media if m.kind == "audio"]
    if not audio:
        raise OfferError("SDP offer has no audio section (m=audio): the page sends a microphone")
    if not any(c.mimeType.lower() == "audio/opus" for m in audio for c in m.rtp.codecs):
        raise OfferError("SDP offer's audio section has no Opus codec")
    for media in session.media:
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise OfferError(f"SDP offer's {media.kind} section has no ICE credentials "
                             "(a=ice-ufrag / a=ice-pwd)")
        if media.dtls is None or not media.dtls.fingerprints:
            raise OfferError(f"SDP offer's {media.kind} section has no DTLS fingerprint")
