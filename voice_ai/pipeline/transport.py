"""The audio transport: where a call's audio comes from and where the agent's audio goes.

A ``CallTransport`` owns one call's audio connection. LiveKit rooms, the simulated caller and
anything later (a browser page) implement it; the call pipeline (``CallSession``) does not know
which one it drives. The transport's ``audio_input`` / ``audio_output`` are livekit-agents
``AudioInput`` / ``AudioOutput`` objects that ``AgentSession`` reads and writes directly.

Life of a transport, driven by ``CallSession``:

    await transport.prepare()          # caller-side work, not counted as call setup
    await transport.connect()          # join the room / start the scenario
    await transport.attach(session)    # wire audio in/out into the AgentSession
    ... session runs over audio_input / audio_output ...
    reason = await transport.wait_ended()   # caller hung up, scenario done, ...
    await transport.hangup()           # agent ends the call (no-op if the caller already did)
    await transport.aclose()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.voice.io import AudioInput, AudioOutput

from voice_ai.records import CallDirection, EndReason

__all__ = ["CallTransport", "CallerSpeechMark"]


@dataclass(frozen=True, slots=True)
class CallerSpeechMark:
    """When the caller stopped speaking and the agent's answer was first heard (wall clock, s).

    Only transports that know the truth (the simulated caller) report these; for LiveKit the
    session's VAD-based estimate (``e2e_latency``) is used instead.
    """

    ended_speaking_at: float
    text: str = ""
    agent_audio_at: float | None = None

    @property
    def response_latency_s(self) -> float | None:
        if self.agent_audio_at is None:
            return None
        return self.agent_audio_at - self.ended_speaking_at


class CallTransport(ABC):
    """One call's audio connection. Subclasses: ``SimulatedCaller``, ``LiveKitTransport``."""

    direction: CallDirection = CallDirection.SIMULATED
    caller_masked: str = ""

    @property
    @abstractmethod
    def audio_input(self) -> AudioInput:
        """Caller audio, as frames, for ``AgentSession.input.audio``."""

    @property
    @abstractmethod
    def audio_output(self) -> AudioOutput:
        """Agent audio sink, for ``AgentSession.output.audio``."""

    async def attach(self, session: AgentSession[Any]) -> None:
        """Wire this transport's audio into ``session`` before ``session.start()``.

        The default sets ``session.input.audio`` / ``session.output.audio``; a transport with
        its own session I/O (LiveKit's ``RoomIO``) overrides it."""
        session.input.audio = self.audio_input
        session.output.audio = self.audio_output

    async def prepare(self) -> None:  # noqa: B027  # optional hook
        """Caller-side preparation that is not part of the agent's call setup (the simulated
        caller synthesizes its lines here). Not counted in call setup latency."""

    @abstractmethod
    async def connect(self) -> None:
        """Open the audio path (join the room, load the scenario audio)."""

    @abstractmethod
    async def wait_ended(self) -> EndReason:
        """Return once the call is over from the caller's side, with the reason."""

    @abstractmethod
    async def hangup(self) -> None:
        """End the call from the agent's side. Must be safe to call after the caller left."""

    async def aclose(self) -> None:  # noqa: B027  # optional hook, most transports need none
        """Release resources. Called exactly once, after ``hangup``."""

    def speech_marks(self) -> list[CallerSpeechMark]:
        """Exact caller end-of-speech times, when this transport knows them."""
        return []
