"""What the agent's tools may ask of the call itself: transfer, DTMF, hang up.

A small port: the call runtime adapts it to the transport's actions (LiveKit SIP transfer and
DTMF, the simulated caller's equivalents); tests and the eval use ``RecordingCallActions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CallAction", "CallActions", "RecordingCallActions"]


class CallActions(Protocol):
    async def transfer(self, to_number: str) -> None:
        """Hand the caller to ``to_number`` (a person); the call's outcome is ``transferred``."""
        ...

    async def send_dtmf(self, digits: str) -> None:
        """Press keys (outbound calls into phone menus)."""
        ...

    async def hang_up(self) -> None:
        """End the call from the agent's side."""
        ...


@dataclass(frozen=True, slots=True)
class CallAction:
    kind: str  # "transfer" | "dtmf" | "hang_up"
    detail: str = ""


@dataclass
class RecordingCallActions:
    """Remembers what was asked, in order; does nothing else."""

    done: list[CallAction] = field(default_factory=list)

    async def transfer(self, to_number: str) -> None:
        self.done.append(CallAction("transfer", to_number))

    async def send_dtmf(self, digits: str) -> None:
        self.done.append(CallAction("dtmf", digits))

    async def hang_up(self) -> None:
        self.done.append(CallAction("hang_up"))

    def kinds(self) -> list[str]:
        return [a.kind for a in self.done]
