"""What the dispatcher hands a call actor: enough to build the call's transport."""

from __future__ import annotations

from dataclasses import dataclass

from voice_ai.pipeline.scenario import Scenario

__all__ = ["CallSpec"]


@dataclass(frozen=True, slots=True)
class CallSpec:
    """Exactly one of ``scenario`` (simulated caller) or ``room`` (LiveKit) is set."""

    call_id: str
    scenario: Scenario | None = None
    room: str | None = None
    caller_masked: str = ""
    outbound: bool = False
    record_audio: bool = True
    admitted_at: float = 0.0
    warm: bool = True

    def __post_init__(self) -> None:
        if (self.scenario is None) == (self.room is None):
            raise ValueError("CallSpec needs exactly one of scenario or room")

    @property
    def kind(self) -> str:
        return "simulated" if self.scenario is not None else "livekit"
