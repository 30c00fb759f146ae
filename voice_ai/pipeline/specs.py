"""What the dispatcher hands a call actor: enough to build the call's transport."""

from __future__ import annotations

from dataclasses import dataclass

from voice_ai.pipeline.checkpoint import ResumeOrder
from voice_ai.pipeline.scenario import Scenario
from voice_ai.webrtc.signalling import SdpOffer

__all__ = ["CallSpec"]


@dataclass(frozen=True, slots=True)
class CallSpec:
    """Exactly one of ``scenario`` (simulated caller), ``room`` (LiveKit) or ``webrtc_offer``
    (a browser on the call page) is set."""

    call_id: str
    scenario: Scenario | None = None
    room: str | None = None
    caller_masked: str = ""
    outbound: bool = False
    record_audio: bool = True
    admitted_at: float = 0.0
    warm: bool = True
    webrtc_offer: SdpOffer | None = None
    resume: ResumeOrder | None = None
    """Set when a new call actor carries on a call another one began (its checkpoint)."""

    def __post_init__(self) -> None:
        given = [x for x in (self.scenario, self.room, self.webrtc_offer) if x is not None]
        if len(given) != 1:
            raise ValueError("CallSpec needs exactly one of scenario, room or webrtc_offer")

    @property
    def kind(self) -> str:
        if self.webrtc_offer is not None:
            return "webrtc"
        return "simulated" if self.scenario is not None else "livekit"
