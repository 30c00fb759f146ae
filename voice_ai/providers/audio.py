"""PCM helpers for engines whose sample rates differ (a fallback voice at another rate)."""

from __future__ import annotations

from livekit import rtc

__all__ = ["PcmResampler"]


class PcmResampler:
    """Streaming mono 16-bit PCM resampler (livekit's, so quality matches the pipeline's)."""

    def __init__(self, input_rate: int, output_rate: int) -> None:
        self._input_rate = input_rate
        self._resampler = rtc.AudioResampler(input_rate, output_rate, num_channels=1)

    def push(self, pcm16: bytes) -> bytes:
        frame = rtc.AudioFrame(pcm16, self._input_rate, 1, len(pcm16) // 2)
        return b"".join(f.data.tobytes() for f in self._resampler.push(frame))

    def flush(self) -> bytes:
        return b"".join(f.data.tobytes() for f in self._resampler.flush())
