"""The audio transport: where a call's audio comes from and where the agent's audio goes.

A ``CallTransport`` owns one call's audio connection. LiveKit rooms (through livekit-agents'
``RoomIO``), the simulated caller and the browser call page (WebRTC) implement it; the call
pipeline (``CallSession``) does not know which one it drives.

Life of a transport, driven by ``CallSession``:

    await transport.prepare()          # caller-side work, not counted as call setup
    await transport.connect()          # join the room / start the scenario / finish ICE
    await transport.attach(session)    # wire audio in/out into the AgentSession
    ... session runs ...
    reason = await transport.wait_ended()   # caller hung up, transferred, zombie, ...
    await transport.hangup()           # agent ends the call (no-op if the caller already did)
    await transport.aclose()

Actions the agent's tools use during the call: ``transfer(to_number)`` hands the caller to a
person (the call then ends with ``EndReason.TRANSFERRED``), ``send_dtmf(digits)`` presses keys
(outbound calls into phone menus), ``end_call()`` hangs up after the agent's goodbye
(``EndReason.AGENT_HANGUP``). ``report_turn(turn)`` shows a finished turn to the caller's
side where it can display it (the browser page).

A subclass writes the ``_``-hooks: ``_attach_audio`` (default: ``audio_input`` /
``audio_output``), ``_wait_ended``, ``_transfer``, ``_send_dtmf``. The public methods add what
every transport shares: number and digit validation, and the zombie-call watchdog
(``voice_ai/pipeline/watchdog.py``), which ends a call with no audio either way for
``CALL_SILENCE_TIMEOUT_S`` or longer than ``MAX_CALL_DURATION_S`` whatever the transport.
"""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.voice.io import AudioInput, AudioOutput

from voice_ai.errors import VoiceAIError
from voice_ai.pipeline.watchdog import CallWatchdog
from voice_ai.records import CallDirection, EndReason, TurnTimings
from voice_ai.telephony.phone import mask_phone, parse_e164

__all__ = ["DTMF_DIGITS", "CallTransport", "CallerSpeechMark", "TransportActionError",
           "dtmf_code", "validate_dtmf"]

log = logging.getLogger("voice_ai.transport")

DTMF_DIGITS = "0123456789*#ABCD"
_MAX_DTMF = 32


class TransportActionError(VoiceAIError):
    """A transfer or DTMF request that cannot be carried out (bad number or digits, a
    transport that cannot do it, the server refused). The message says which."""


def validate_dtmf(digits: str) -> str:
    """``digits`` upper-cased if every one is a DTMF key (0-9 * # A-D), else
    ``TransportActionError``."""
    keys = digits.strip().upper()
    if not keys:
        raise TransportActionError("DTMF digits must not be empty")
    if len(keys) > _MAX_DTMF:
        raise TransportActionError(f"at most {_MAX_DTMF} DTMF digits at once, got {len(keys)}")
    bad = sorted({k for k in keys if k not in DTMF_DIGITS})
    if bad:
        raise TransportActionError(f"not DTMF keys: {''.join(bad)!r} (allowed: {DTMF_DIGITS})")
    return keys


def dtmf_code(key: str) -> int:
    """RFC 4733 event code of a DTMF key: 0-9, * = 10, # = 11, A-D = 12-15."""
    return DTMF_DIGITS.index(key)


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
    """One call's audio connection. Subclasses: ``SimulatedCaller``, ``LiveKitTransport``,
    ``WebRtcTransport``."""

    direction: CallDirection = CallDirection.SIMULATED
    caller_masked: str = ""
    watchdog: CallWatchdog | None = None
    """Set by ``build_transport`` for every call; ``None`` runs the call unwatched."""
    end_detail: str = ""
    """A line on why the call ended, when the end reason alone does not say it."""
    _agent_end: asyncio.Event | None = None  # set by end_call(); created on first use

    @property
    def audio_input(self) -> AudioInput:
        """Caller audio, as frames, for ``AgentSession.input.audio``."""
        raise NotImplementedError(f"{type(self).__name__} wires its own audio input")

    @property
    def audio_output(self) -> AudioOutput:
        """Agent audio sink, for ``AgentSession.output.audio``."""
        raise NotImplementedError(f"{type(self).__name__} wires its own audio output")

    # --- lifecycle ------------------------------------------------------------------------
    async def prepare(self) -> None:  # noqa: B027  # optional hook
        """Caller-side preparation that is not part of the agent's call setup (the simulated
        caller synthesizes its lines here). Not counted in call setup latency."""

    @abstractmethod
    async def connect(self) -> None:
        """Open the audio path (join the room, load the scenario audio, finish ICE)."""

    async def attach(self, session: AgentSession[Any]) -> None:
        """Wire this transport's audio into ``session`` before ``session.start()``, and let
        the watchdog observe it."""
        await self._attach_audio(session)
        if self.watchdog is not None:
            self.watchdog.observe(session)

    async def _attach_audio(self, session: AgentSession[Any]) -> None:
        """Default: ``session.input.audio`` / ``output.audio`` from this transport's ports;
        a transport with its own session I/O (LiveKit's ``RoomIO``) overrides it."""
        session.input.audio = self.audio_input
        session.output.audio = self.audio_output

    async def wait_ended(self) -> EndReason:
        """Return once the call is over: the transport's own reason (caller hung up, scenario
        done, transferred, ...), the agent's ``end_call()``, or the watchdog's (silence, too
        long), whichever comes first."""
        ended = asyncio.ensure_future(self._wait_ended())
        agent = asyncio.ensure_future(self._agent_ending().wait())
        waits: list[asyncio.Future[Any]] = [ended, agent]
        zombie = None
        if self.watchdog is not None:
            zombie = asyncio.ensure_future(self.watchdog.watch())
            waits.append(zombie)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                if not task.done():
                    task.cancel()
        if ended.done() and not ended.cancelled():
            return ended.result()
        if agent.done() and not agent.cancelled():
            return EndReason.AGENT_HANGUP
        assert zombie is not None and self.watchdog is not None
        reason = zombie.result()
        self.end_detail = _WATCHDOG_DETAIL[reason].format(limits=self.watchdog.limits)
        log.warning("call ended by the watchdog",
                    extra={"end_reason": reason.value, "detail": self.end_detail})
        return reason

    async def end_call(self) -> None:
        """The agent ends the call mid-conversation (say goodbye first and let it play):
        ``wait_ended()`` returns ``AGENT_HANGUP`` and the caller is hung up as usual."""
        self._agent_ending().set()

    def _agent_ending(self) -> asyncio.Event:
        if self._agent_end is None:
            self._agent_end = asyncio.Event()
        return self._agent_end

    @abstractmethod
    async def _wait_ended(self) -> EndReason:
        """Return once the call is over from the transport's side, with the reason."""

    @abstractmethod
    async def hangup(self) -> None:
        """End the call from the agent's side. Must be safe to call after the caller left."""

    async def aclose(self) -> None:
        """Release resources. Called exactly once, after ``hangup``. Subclasses call super."""
        if self.watchdog is not None:
            self.watchdog.detach()

    def speech_marks(self) -> list[CallerSpeechMark]:
        """Exact caller end-of-speech times, when this transport knows them."""
        return []

    # --- actions during the call ------------------------------------------------------------
    async def transfer(self, to_number: str) -> None:
        """Hand the caller to a person at ``to_number`` (E.164; spaces, dots, dashes and
        brackets are ignored). On success the call ends with
        ``EndReason.TRANSFERRED``; otherwise ``TransportActionError`` says why and the call
        goes on."""
        try:  # spoken or written numbers come with separators: "+1 (555) 010-0999"
            number = parse_e164(re.sub(r"[\s().-]", "", to_number))
        except ValueError as e:
            raise TransportActionError(f"transfer number: {e}") from None
        log.info("transferring the caller", extra={"to": mask_phone(number)})
        await self._transfer(number)

    async def _transfer(self, to_e164: str) -> None:
        raise TransportActionError(f"{type(self).__name__} cannot transfer calls")

    async def send_dtmf(self, digits: str) -> None:
        """Press ``digits`` (0-9 * # A-D) on the call, in order."""
        await self._send_dtmf(validate_dtmf(digits))

    async def _send_dtmf(self, digits: str) -> None:
        raise TransportActionError(f"{type(self).__name__} cannot send DTMF")

    def report_turn(self, turn: TurnTimings) -> None:  # noqa: B027  # optional hook
        """A turn finished (latency, providers). The browser page shows it; others ignore it."""


_WATCHDOG_DETAIL = {
    EndReason.SILENCE_TIMEOUT: ("no caller sound and no agent audio for "
                                "{limits.silence_timeout_s:g} s (CALL_SILENCE_TIMEOUT_S)"),
    EndReason.MAX_DURATION: "call reached MAX_CALL_DURATION_S={limits.max_duration_s:g}",
}
