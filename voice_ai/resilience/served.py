"""Which provider served a stage: an event each stage emits, not an attribute read later.

Every stage (``StageSTT``, ``StageLLM``, ``StageTTS``) emits ``"served"`` with a ``Served`` when
a provider produced its result: a final transcript, the first chunk of a reply, the first
audio of a reply. The call's turn builder listens and records the latest one of each stage on
the turn (``TurnTimings.stt_provider`` ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SERVED", "Served", "ServedEvent"]

ServedEvent = Literal["served"]
SERVED: ServedEvent = "served"


@dataclass(frozen=True, slots=True)
class Served:
    stage: str  # "stt" | "llm" | "tts"
    provider: str
    fallback: bool
    """True when the stage's configured provider did not serve (breaker open, failure, quota)."""
