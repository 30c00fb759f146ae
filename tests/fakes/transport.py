"""A transport that plays scripted caller audio and keeps every agent frame it receives.

``ScriptedCaller(frames)`` feeds the frames at real-time pace (20 ms per 20 ms: the VAD, the
endpointing delay and livekit's timings all assume it), then silence; the call ends
``hang_up_after_s`` after the script once the agent has been quiet that long. ``agent_frames``
holds every frame the agent's audio output got, with the wall time it arrived: what the
caller would hear.
"""

from __future__ import annotations

import asyncio
import time

from livekit import rtc
from livekit.agents.voice.io import AudioInput, AudioOutput, AudioOutputCapabilities

from tests.fakes.providers import FRAME_S, RATE
from voice_ai.pipeline.transport import CallTransport
from voice_ai.records import EndReason


class _Input(AudioInput):
    def __init__(self, script: list[rtc.AudioFrame]) -> None:
        super().__init__(label="scripted-caller")
        self._script = list(script)
        self._silence = rtc.AudioFrame(bytes(int(RATE * FRAME_S) * 2), RATE, 1,
                                       int(RATE * FRAME_S))
        self._next_at: float | None = None
        self.closed = False
        self.done = asyncio.Event()

    async def __anext__(self) -> rtc.AudioFrame:
        if self.closed:
            raise StopAsyncIteration
        now = time.monotonic()
        self._next_at = now if self._next_at is None else self._next_at
        if self._next_at > now:
            await asyncio.sleep(self._next_at - now)
        self._next_at += FRAME_S
        if self._script:
            return self._script.pop(0)
        self.done.set()
        return self._silence


class _Output(AudioOutput):
    def __init__(self) -> None:
        super().__init__(label="scripted-phone", capabilities=AudioOutputCapabilities(pause=False))
        self.frames: list[tuple[float, rtc.AudioFrame]] = []
        self.last_audio_at = 0.0
        self._speaking = False

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        now = time.time()
        if not self._speaking:
            self._speaking = True
            self.on_playback_started(created_at=now)
        self.frames.append((now, frame))
        self.last_audio_at = time.monotonic()

    def flush(self) -> None:
        super().flush()
        if self._speaking:
            self._speaking = False
            played = sum(f.duration for _, f in self.frames)
            self.on_playback_finished(playback_position=played, interrupted=False)

    def clear_buffer(self) -> None:
        if self._speaking:
            self._speaking = False
            self.on_playback_finished(playback_position=0.0, interrupted=True)


class ScriptedCaller(CallTransport):
    def __init__(self, script: list[rtc.AudioFrame], *, hang_up_after_s: float = 1.0,
                 timeout_s: float = 15.0) -> None:
        self._input = _Input(script)
        self._output = _Output()
        self._hang_up_after_s = hang_up_after_s
        self._timeout_s = timeout_s

    @property
    def audio_input(self) -> AudioInput:
        return self._input

    @property
    def audio_output(self) -> AudioOutput:
        return self._output

    @property
    def agent_frames(self) -> list[tuple[float, rtc.AudioFrame]]:
        return self._output.frames

    async def connect(self) -> None:
        pass

    async def _wait_ended(self) -> EndReason:
        deadline = time.monotonic() + self._timeout_s
        await asyncio.wait_for(self._input.done.wait(), self._timeout_s)
        while time.monotonic() < deadline:
            quiet = time.monotonic() - max(self._output.last_audio_at, 0.0)
            if quiet >= self._hang_up_after_s:
                return EndReason.CALLER_HANGUP
            await asyncio.sleep(0.05)
        return EndReason.TIMEOUT

    async def hangup(self) -> None:
        self._input.closed = True
