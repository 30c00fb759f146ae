"""Audio between a LiveKit room and ``AgentSession``: the caller's track in, the agent's out.

``ParticipantAudioInput`` yields the caller's frames (``rtc.AudioStream`` resamples a track
natively; any other stream is resampled here). ``RoomAudioOutput`` feeds an ``rtc.AudioSource``
and keeps the ``AudioOutput`` contract that turn-taking depends on: ``playback_started`` on a
segment's first frame, ``playback_finished`` once a flushed segment has played out, and
``playback_finished(interrupted=True)`` when ``clear_buffer`` cuts it short.
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from collections import deque
from collections.abc import AsyncIterator, Iterable

from livekit import rtc
from livekit.agents.voice import io

__all__ = ["ParticipantAudioInput", "RoomAudioOutput", "busy_tone_frames", "say"]

FRAME_MS = 20


class _Resample:
    """Resamples frames to one rate, creating a resampler per input rate as needed."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._resampler: rtc.AudioResampler | None = None
        self._from = 0

    def __call__(self, frame: rtc.AudioFrame) -> list[rtc.AudioFrame]:
        if frame.sample_rate == self.rate:
            return [frame]
        if self._resampler is None or self._from != frame.sample_rate:
            self._resampler = rtc.AudioResampler(
                frame.sample_rate, self.rate, num_channels=frame.num_channels
            )
            self._from = frame.sample_rate
        return self._resampler.push(frame)

    def drain(self) -> list[rtc.AudioFrame]:
        """The samples the resampler still holds back; it starts afresh afterwards."""
        resampler, self._resampler = self._resampler, None
        return resampler.flush() if resampler is not None else []


class ParticipantAudioInput(io.AudioInput):
    """The caller's audio. Waits for a track, follows a re-published one, ends on ``aclose``."""

    def __init__(self, *, sample_rate: int = 24_000) -> None:
        super().__init__(label="LiveKitCaller")
        self.sample_rate = sample_rate
        self._stream: AsyncIterator[rtc.AudioFrameEvent] | None = None
        self._changed = asyncio.Event()
        self._closed = False
        self._resample = _Resample(sample_rate)
        self._ready: deque[rtc.AudioFrame] = deque()

    def attach_track(self, track: rtc.Track) -> None:
        """Read ``track`` from now on, mono at ``sample_rate`` (the FFI resamples)."""
        self.attach_stream(
            rtc.AudioStream.from_track(track=track, sample_rate=self.sample_rate, num_channels=1)
        )

    def attach_stream(self, stream: AsyncIterator[rtc.AudioFrameEvent]) -> None:
        self._stream = stream
        self._changed.set()

    async def __anext__(self) -> rtc.AudioFrame:
        while not self._closed:
            if self._ready:
                return self._ready.popleft()
            stream = self._stream
            if stream is None:
                await self._changed.wait()
                self._changed.clear()
                continue
            try:
                event = await anext(stream)
            except StopAsyncIteration:  # track ended: wait for the next one or for aclose
                if self._stream is stream:
                    self._stream = None
                continue
            self._ready.extend(self._resample(event.frame))
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._closed = True
        self._changed.set()
        stream, self._stream = self._stream, None
        if isinstance(stream, rtc.AudioStream):
            await stream.aclose()


class RoomAudioOutput(io.AudioOutput):
    """The agent's voice, pushed into ``source`` (published as the agent's track)."""

    def __init__(self, source: rtc.AudioSource) -> None:
        super().__init__(
            label="LiveKitRoom",
            capabilities=io.AudioOutputCapabilities(pause=False),
            sample_rate=source.sample_rate,
        )
        self._source = source
        self._resample = _Resample(source.sample_rate)
        self._segment_s = 0.0  # audio pushed in the segment being captured
        self._capturing = False
        self._playout: asyncio.Task[None] | None = None
        self._playout_s = 0.0  # length of the flushed segment waiting to play out

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if not self._capturing:
            self._capturing = True
            self._segment_s = 0.0
            self.on_playback_started(created_at=time.time())
        for out in self._resample(frame):
            self._segment_s += out.duration
            await self._source.capture_frame(out)

    def flush(self) -> None:
        super().flush()
        if not self._capturing:
            return
        self._capturing = False
        previous = self._playout
        tail = self._resample.drain()
        self._segment_s += sum(frame.duration for frame in tail)
        self._playout_s = self._segment_s
        self._playout = asyncio.get_running_loop().create_task(
            self._finish_when_played(previous, tail, self._segment_s)
        )

    async def _finish_when_played(
        self, previous: asyncio.Task[None] | None, tail: list[rtc.AudioFrame], length_s: float
    ) -> None:
        if previous is not None:
            await asyncio.shield(previous)
        for frame in tail:
            await self._source.capture_frame(frame)
        await self._source.wait_for_playout()
        self.on_playback_finished(playback_position=length_s, interrupted=False)

    def clear_buffer(self) -> None:
        self._resample.drain()
        queued_s = self._source.queued_duration
        self._source.clear_queue()
        if self._playout is not None and not self._playout.done():
            self._playout.cancel()
            self._playout = None
            played = max(0.0, self._playout_s - queued_s)
            self.on_playback_finished(playback_position=played, interrupted=True)
        if self._capturing:
            self._capturing = False
            played = max(0.0, self._segment_s - queued_s)
            self.on_playback_finished(playback_position=played, interrupted=True)

    async def aclose(self) -> None:
        if self._playout is not None:
            self._playout.cancel()
        await self._source.aclose()


async def say(output: io.AudioOutput, frames: Iterable[rtc.AudioFrame]) -> None:
    """Play ``frames`` as one segment and return once they have played out."""
    for frame in frames:
        await output.capture_frame(frame)
    output.flush()
    await output.wait_for_playout()


def busy_tone_frames(sample_rate: int = 24_000, *, duration_s: float = 2.0,
                     tone_hz: float = 425.0, cadence_s: float = 0.5) -> list[rtc.AudioFrame]:
    """A busy tone (425 Hz, on/off every ``cadence_s``): what the caller hears when no
    synthesized busy message is available."""
    per_frame = sample_rate * FRAME_MS // 1000
    frames = []
    for index in range(math.ceil(duration_s * 1000 / FRAME_MS)):
        start = index * per_frame
        on = int(start / sample_rate / cadence_s) % 2 == 0
        samples = array("h", (
            int(8000 * math.sin(2 * math.pi * tone_hz * (start + i) / sample_rate)) if on else 0
            for i in range(per_frame)
        ))
        frames.append(rtc.AudioFrame(samples.tobytes(), sample_rate, 1, per_frame))
    return frames


def frames_from_pcm(pcm16: bytes, sample_rate: int) -> list[rtc.AudioFrame]:
    """Mono 16-bit PCM (a synthesized busy message) as ``FRAME_MS`` frames, the last padded."""
    step = sample_rate * FRAME_MS // 1000 * 2
    pcm16 += bytes(-len(pcm16) % step)
    return [rtc.AudioFrame(pcm16[i : i + step], sample_rate, 1, step // 2)
            for i in range(0, len(pcm16), step)]
