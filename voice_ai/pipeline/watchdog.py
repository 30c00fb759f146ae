"""The zombie-call watchdog: a call whose audio has stopped both ways, or that runs too long,
is ended as failed with its reason.

LiveKit Agents users report calls stuck for 40+ minutes: the caller's leg died without a
hang-up, the agent listens for ever, and the call holds an admission slot and a call actor.
The watchdog watches what the line carries, not what the session thinks:

- **caller sound**: a caller frame whose level is above ``CALLER_SOUND_DBFS`` (-55 dBFS, RMS
  about 58 of 32768). Speech sits around -30 to -15 dBFS and breathing or a room near the
  microphone around -50 to -40 dBFS, so a caller who breathes, types or has a TV on is alive;
  a dead leg delivers no frames at all, digital silence, or a codec's comfort noise (-65 dBFS
  and below). A caller who stays perfectly quiet while the agent says nothing for the whole
  timeout is treated as gone.
- **agent audio**: the session's audio output is playing (between its ``playback_started`` and
  ``playback_finished``), as the sink reports it, so a long answer is never mistaken for
  silence.

``EndReason.SILENCE_TIMEOUT``: neither for ``CALL_SILENCE_TIMEOUT_S``.
``EndReason.MAX_DURATION``: the call has lasted ``MAX_CALL_DURATION_S``.

The clock and the sleep are injected, so the policy is tested in milliseconds.
``CallTransport`` wires a watchdog into every call it carries (``attach`` / ``wait_ended``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.voice.io import AudioInput, AudioOutput

from voice_ai.audio import dbfs_to_rms, frame_rms, rms
from voice_ai.config import Settings
from voice_ai.records import EndReason

__all__ = ["CALLER_SOUND_DBFS", "CallWatchdog", "WatchdogLimits"]

CALLER_SOUND_DBFS = -55.0


@dataclass(frozen=True, slots=True)
class WatchdogLimits:
    silence_timeout_s: float
    max_duration_s: float
    caller_sound_dbfs: float = CALLER_SOUND_DBFS

    def __post_init__(self) -> None:
        if self.silence_timeout_s <= 0 or self.max_duration_s <= 0:
            raise ValueError("watchdog timeouts must be positive, got "
                             f"silence {self.silence_timeout_s} s, max {self.max_duration_s} s")

    @classmethod
    def from_settings(cls, settings: Settings) -> WatchdogLimits:
        return cls(silence_timeout_s=settings.call_silence_timeout_s,
                   max_duration_s=settings.max_call_duration_s)


class CallWatchdog:
    """Decides when a call is a zombie. Feed it caller audio and the agent's playback state;
    ``verdict()`` says whether to end the call now, ``watch()`` waits until it must."""

    def __init__(
        self,
        limits: WatchdogLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._started_at: float | None = None
        self._last_sound_at = 0.0
        self._agent_playing = False
        self._observed: tuple[AudioOutput, Callable[[Any], None], Callable[[Any], None]] | None
        self._observed = None

    # --- what the line carries --------------------------------------------------------------
    def start(self) -> None:
        """The call is connected: both clocks start now (a second call is a no-op)."""
        if self._started_at is None:
            self._started_at = self._last_sound_at = self._clock()

    def caller_audio(self, pcm16: bytes) -> None:
        self._caller_level(rms(pcm16))

    def caller_frame(self, frame: rtc.AudioFrame) -> None:
        """``caller_audio`` for a frame (its level, computed once, stays on the frame for the
        STT stage)."""
        self._caller_level(frame_rms(frame))

    def _caller_level(self, level: float) -> None:
        # an RMS compared with the threshold's RMS: no logarithm per 20 ms frame
        if level > dbfs_to_rms(self.limits.caller_sound_dbfs):
            self._last_sound_at = self._clock()

    def agent_playing(self, playing: bool) -> None:
        if self._agent_playing or playing:  # the line was busy until now
            self._last_sound_at = self._clock()
        self._agent_playing = playing

    def quiet_s(self) -> float:
        """Seconds since the line last carried sound either way (caller sound, or the agent
        playing); 0 while the agent plays."""
        if self._agent_playing:
            return 0.0
        return max(0.0, self._clock() - self._last_sound_at)

    # --- the decision --------------------------------------------------------------------------
    def verdict(self) -> EndReason | None:
        """The reason to end the call now, or ``None`` while it is alive."""
        self.start()
        assert self._started_at is not None
        now = self._clock()
        if now - self._started_at >= self.limits.max_duration_s:
            return EndReason.MAX_DURATION
        if not self._agent_playing and now - self._last_sound_at >= self.limits.silence_timeout_s:
            return EndReason.SILENCE_TIMEOUT
        return None

    def _seconds_to_next_check(self) -> float:
        assert self._started_at is not None
        now = self._clock()
        to_max = self._started_at + self.limits.max_duration_s - now
        # while the agent plays, silence can begin no sooner than a full timeout from now
        silent_since = now if self._agent_playing else self._last_sound_at
        to_silence = silent_since + self.limits.silence_timeout_s - now
        return max(0.001, min(to_max, to_silence))

    async def watch(self) -> EndReason:
        """Return the reason once the call must end; never returns for a live call."""
        while (reason := self.verdict()) is None:
            await self._sleep(self._seconds_to_next_check())
        return reason

    # --- wiring into an AgentSession ---------------------------------------------------------
    def observe(self, session: AgentSession[Any]) -> None:
        """Tap the caller audio the session reads and follow its audio output's playback.
        Call after the transport set ``session.input.audio`` / ``output.audio``."""
        if session.input.audio is not None:
            session.input.audio = _CallerTap(session.input.audio, self)
        output = session.output.audio
        if output is not None:
            def started(_: Any) -> None:
                self.agent_playing(True)

            def finished(_: Any) -> None:
                self.agent_playing(False)

            output.on("playback_started", started)
            output.on("playback_finished", finished)
            self._observed = (output, started, finished)
        self.start()

    def detach(self) -> None:
        """Stop following the output's playback events (the call is over)."""
        if self._observed is not None:
            output, started, finished = self._observed
            output.off("playback_started", started)
            output.off("playback_finished", finished)
            self._observed = None


class _CallerTap(AudioInput):
    """Passes the caller's frames through unchanged, showing each one to the watchdog."""

    def __init__(self, source: AudioInput, watchdog: CallWatchdog) -> None:
        super().__init__(label="ZombieWatchdog", source=source)
        self._watchdog = watchdog

    async def __anext__(self) -> rtc.AudioFrame:
        assert self.source is not None
        frame = await self.source.__anext__()
        self._watchdog.caller_frame(frame)
        return frame
