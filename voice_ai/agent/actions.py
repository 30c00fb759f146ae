"""What the agent's tools may ask of the call itself: transfer, DTMF, hang up.

A small port: the call runtime adapts it to the transport's actions (LiveKit SIP transfer and
DTMF, the simulated caller's equivalents); tests and the eval use ``RecordingCallActions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from voice_ai.pipeline.transport import CallTransport

__all__ = ["CallAction", "CallActions", "RecordingCallActions", "TransportCallActions"]


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


class TransportCallActions:
    """The call's own transport: LiveKit SIP transfer and DTMF, the simulated caller's records.

    A refused transfer or DTMF raises the transport's ``TransportActionError``; the tools turn
    it into an apology."""

    def __init__(self, transport: CallTransport) -> None:
        self._transport = transport

    async def transfer(self, to_number: str) -> None:
        await self._transport.transfer(to_number)

    async def send_dtmf(self, digits: str) -> None:
        await self._transport.send_dtmf(digits)

    async def hang_up(self) -> None:
        await self._transport.end_call()
