"""Both sides of a conversation on one timeline, as a stereo WAV (left caller, right agent)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from livekit import rtc

from voice_ai.audio import AnyRateResampler, interleave, pcm_of

__all__ = ["ConversationRecorder"]

_RATE = 16_000


class ConversationRecorder:
    """Places each frame at the wall-clock time it was (or would be) heard."""

    def __init__(self, sample_rate: int = _RATE) -> None:
        self.sample_rate = sample_rate
        self._t0: float | None = None
        self._caller = bytearray()
        self._agent = bytearray()
        self._resampler = AnyRateResampler(sample_rate)

    def start(self, *, at: float) -> None:
        if self._t0 is None:
            self._t0 = at

    def _offset(self, at: float) -> int:
        self.start(at=at)
        assert self._t0 is not None
        return max(0, int((at - self._t0) * self.sample_rate)) * 2

    @staticmethod
    def _write(track: bytearray, offset: int, data: bytes) -> None:
        if len(track) < offset:
            track.extend(bytes(offset - len(track)))
        track[offset : offset + len(data)] = data

    def add_caller(self, pcm16: bytes, *, at: float) -> None:
        self._write(self._caller, self._offset(at), pcm16)

    def add_agent(self, frame: rtc.AudioFrame, *, at: float) -> None:
        data = pcm_of(self._resampler.push(frame))
        # the resampler returns audio in bursts, a little late: within a reply, a burst goes
        # after the audio already placed instead of over it; a new reply starts at its time
        self._write(self._agent, max(self._offset(at), len(self._agent)), data)

    def truncate_agent(self, *, at: float) -> None:
        """Barge-in: audio queued after ``at`` was never heard."""
        del self._agent[self._offset(at) :]

    @property
    def agent_voiced_seconds(self) -> float:
        samples = np.frombuffer(bytes(self._agent), dtype=np.int16)
        return float(np.count_nonzero(np.abs(samples) > 500)) / self.sample_rate

    def save(self, path: Path) -> Path:
        stereo = interleave(bytes(self._caller), bytes(self._agent))
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(stereo)
        return path
