"""Why a LiveKit webhook was refused, and where refusals are counted.

A module of its own (no livekit import) so the metrics registry can start every reason's
series at zero without loading the LiveKit SDK.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

__all__ = ["RejectReason", "WebhookRejections"]


class RejectReason(StrEnum):
    """The ``reason`` label of ``voice_ai_webhooks_rejected_total``."""

    SIGNATURE = "signature"  # missing header, wrong key or secret, tampered body
    EXPIRED = "expired"  # token expired, or createdAt older than WEBHOOK_TOLERANCE_S
    FUTURE = "future"  # token not yet valid, or createdAt ahead of our clock
    REPLAYED = "replayed"  # an event id already seen within its validity
    PAYLOAD = "payload"  # signed, but not UTF-8 / not a LiveKit event / missing fields
    TOO_LARGE = "too_large"  # body over the cap (refused before it was read)
    UNCONFIGURED = "unconfigured"  # LIVEKIT_API_KEY/SECRET not set: nothing can be verified


class WebhookRejections(Protocol):
    """Where refused webhooks are counted (the cluster's metrics hub; a list in tests)."""

    def webhook_rejected(self, reason: str) -> None: ...
