"""Audio format: the one place that resamples, frames and measures mono 16-bit PCM.

Every stage that changes a sample rate or cuts audio into frames uses this module (the call
pipeline, provider fallbacks, transports, recorders, simulators), so quality and edge cases
(odd byte counts, the resampler's tail, identity rates) are handled once.

    resampler = Resampler(22_050, 16_000)
    frames = resampler.push(frame) ; frames += resampler.flush()
    pcm16k = resample_pcm(pcm, 22_050, 16_000)
    for frame in slice_frames(pcm16k, 16_000, frame_ms=20): ...

Resampling is livekit's (``rtc.AudioResampler``), the same one livekit-agents uses inside
``AgentSession``, so a fallback voice at another rate sounds like the pipeline's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from livekit import rtc

__all__ = [
    "FULL_SCALE",
    "SAMPLE_WIDTH",
    "AnyRateResampler",
    "Resampler",
    "concat_frames",
    "dbfs_to_rms",
    "downmix",
    "frame_from_pcm",
    "frame_rms",
    "interleave",
    "pcm_of",
    "resample_pcm",
    "rms",
    "rms_dbfs",
    "silence",
    "slice_frames",
]

SAMPLE_WIDTH = 2  # bytes per mono int16 sample
FULL_SCALE = 32768.0  # int16 full scale: 0 dBFS


def _whole_samples(pcm16: bytes) -> bytes:
    """Drop a trailing half sample: a frame holds whole int16 samples."""
    return pcm16[: len(pcm16) - len(pcm16) % SAMPLE_WIDTH]


def frame_from_pcm(pcm16: bytes, sample_rate: int) -> rtc.AudioFrame:
    """One mono frame holding all of ``pcm16`` (a trailing odd byte is dropped)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    data = _whole_samples(pcm16)
    return rtc.AudioFrame(data, sample_rate, 1, len(data) // SAMPLE_WIDTH)


def pcm_of(frames: Iterable[rtc.AudioFrame]) -> bytes:
    """The PCM bytes of ``frames``, back to back."""
    return b"".join(f.data.tobytes() for f in frames)


class Resampler:
    """Streaming mono int16 resampler; identity rates pass frames through untouched.

    ``push`` may hold back a few milliseconds; call ``flush`` at the end of a stream, or its
    tail is lost.
    """

    def __init__(self, input_rate: int, output_rate: int) -> None:
        if input_rate <= 0 or output_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {input_rate} -> {output_rate}")
        self.input_rate = input_rate
        self.output_rate = output_rate
        self._inner = (None if input_rate == output_rate
                       else rtc.AudioResampler(input_rate, output_rate, num_channels=1))

    def push(self, frame: rtc.AudioFrame) -> list[rtc.AudioFrame]:
        if frame.sample_rate != self.input_rate:
            raise ValueError(f"frame at {frame.sample_rate} Hz pushed into a resampler "
                             f"expecting {self.input_rate} Hz")
        if self._inner is None:
            return [frame]
        return list(self._inner.push(frame))

    def push_pcm(self, pcm16: bytes) -> bytes:
        if not pcm16:
            return b""
        return pcm_of(self.push(frame_from_pcm(pcm16, self.input_rate)))

    def flush(self) -> list[rtc.AudioFrame]:
        return [] if self._inner is None else list(self._inner.flush())

    def flush_pcm(self) -> bytes:
        return pcm_of(self.flush())


class AnyRateResampler:
    """Streaming mono int16 resampler to one output rate from frames of any rate.

    For sinks fed by several sources in turn (a TTS voice, then its fallback at another rate):
    when the input rate changes, the previous resampler's tail is flushed first, so no audio is
    lost or reordered.
    """

    def __init__(self, output_rate: int) -> None:
        if output_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {output_rate}")
        self.output_rate = output_rate
        self._current: Resampler | None = None

    def push(self, frame: rtc.AudioFrame) -> list[rtc.AudioFrame]:
        out: list[rtc.AudioFrame] = []
        if self._current is None or self._current.input_rate != frame.sample_rate:
            out += self.flush()
            self._current = Resampler(frame.sample_rate, self.output_rate)
        return out + self._current.push(frame)

    def flush(self) -> list[rtc.AudioFrame]:
        """The held-back tail; the next ``push`` starts afresh."""
        current, self._current = self._current, None
        return current.flush() if current is not None else []


def resample_pcm(pcm16: bytes, input_rate: int, output_rate: int) -> bytes:
    """A whole buffer at another rate (tail included)."""
    resampler = Resampler(input_rate, output_rate)
    return resampler.push_pcm(pcm16) + resampler.flush_pcm()


def slice_frames(
    pcm16: bytes, sample_rate: int, *, frame_ms: int = 20, pad: bool = True
) -> list[rtc.AudioFrame]:
    """``pcm16`` cut into frames of ``frame_ms``; the last one is padded with silence
    (``pad``) or kept short."""
    if frame_ms <= 0:
        raise ValueError(f"frame_ms must be positive, got {frame_ms}")
    data = _whole_samples(pcm16)
    step = sample_rate * frame_ms // 1000 * SAMPLE_WIDTH
    if step == 0:
        raise ValueError(f"{frame_ms} ms at {sample_rate} Hz is less than one sample")
    if pad and len(data) % step:
        data += bytes(step - len(data) % step)
    return [frame_from_pcm(data[i : i + step], sample_rate) for i in range(0, len(data), step)]


def concat_frames(frames: Iterable[rtc.AudioFrame]) -> rtc.AudioFrame:
    """One frame from several of the same rate (livekit's ``combine_audio_frames``)."""
    return rtc.combine_audio_frames(list(frames))


def downmix(pcm16: bytes, channels: int) -> bytes:
    """Interleaved int16 PCM of ``channels`` channels as mono (the channels' mean)."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if channels == 1:
        return _whole_samples(pcm16)
    usable = len(pcm16) - len(pcm16) % (SAMPLE_WIDTH * channels)
    samples = np.frombuffer(pcm16[:usable], dtype=np.int16).reshape(-1, channels)
    mono: bytes = samples.mean(axis=1, dtype=np.float64).round().astype(np.int16).tobytes()
    return mono


def interleave(*channels: bytes) -> bytes:
    """Mono int16 tracks as one interleaved multi-channel buffer (stereo: left, right); the
    shorter ones are padded with silence."""
    if not channels:
        raise ValueError("interleave needs at least one channel")
    tracks = [np.frombuffer(_whole_samples(c), dtype=np.int16) for c in channels]
    out = np.zeros((max(t.size for t in tracks), len(tracks)), dtype=np.int16)
    for index, track in enumerate(tracks):
        out[: track.size, index] = track
    joined: bytes = out.tobytes()
    return joined


def silence(duration_s: float, sample_rate: int) -> bytes:
    return bytes(int(duration_s * sample_rate) * SAMPLE_WIDTH)


def _rms_of(samples: np.ndarray[Any, np.dtype[np.int16]]) -> float:
    if samples.size == 0:
        return 0.0
    # one float64 dot product: ~4x cheaper than astype + square + mean on a 20 ms frame, and
    # exact (a sum of int16 squares stays far below 2**53 for any buffer a call holds)
    wide = samples.astype(np.float64)
    return math.sqrt(float(np.dot(wide, wide)) / samples.size)


def rms(pcm16: bytes) -> float:
    """Root mean square of int16 samples (0 for no samples): a cheap speech/silence measure."""
    return _rms_of(np.frombuffer(pcm16, dtype=np.int16, count=len(pcm16) // SAMPLE_WIDTH))


_LEVEL_KEY = "voice_ai.rms"  # where a frame keeps its own level (``frame.userdata``)


def frame_rms(frame: rtc.AudioFrame) -> float:
    """``rms`` of one mono frame, computed once per frame: the call's watchdog and its STT
    stage both look at every caller frame (the same frame object), so the level is kept in
    the frame's own ``userdata`` and the second look reads it there."""
    level = frame.userdata.get(_LEVEL_KEY)
    if level is None:
        level = frame.userdata[_LEVEL_KEY] = _rms_of(np.frombuffer(frame.data, dtype=np.int16))
    return float(level)


def dbfs_to_rms(dbfs: float) -> float:
    """The int16 RMS of a level in dBFS (the inverse of ``rms_dbfs``): compare an ``rms``
    against it instead of taking a logarithm per frame."""
    return FULL_SCALE * math.pow(10.0, dbfs / 20.0)


def rms_dbfs(pcm16: bytes) -> float:
    """Level of ``pcm16`` in dB relative to int16 full scale (a full-scale square wave is 0;
    digital silence is ``-inf``)."""
    level = rms(pcm16)
    return 20.0 * math.log10(level / FULL_SCALE) if level > 0 else -math.inf
