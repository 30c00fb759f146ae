"""The simulated caller's "stopped speaking" mark: the end of its line's last speech, not of
the line's audio (Piper ends each line with ~0.2 s of near silence)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from voice_ai.pipeline.simulated import (
    CALLER_SAMPLE_RATE,
    FRAME_S,
    _CallerAudioInput,
    quiet_tail_s,
)

pytestmark = pytest.mark.unit

_FRAME = int(CALLER_SAMPLE_RATE * FRAME_S)


def _tone(frames: int, amplitude: float) -> bytes:
    t = np.arange(frames * _FRAME) / CALLER_SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.int16).tobytes()


def _frames(pcm: bytes) -> list[bytes]:
    step = _FRAME * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


def test_the_quiet_tail_is_what_follows_the_last_speech_window() -> None:
    line = _tone(10, 8000) + _tone(10, 100)  # 0.2 s of speech, 0.2 s of a faint tail
    assert quiet_tail_s(line) == pytest.approx(0.2, abs=1e-9)
    assert quiet_tail_s(_tone(10, 8000)) == 0.0
    assert quiet_tail_s(_tone(10, 100)) == 0.0  # nothing spoken: no tail to take off


async def test_the_caller_stopped_speaking_when_its_speech_ended() -> None:
    source = _CallerAudioInput(None, time.monotonic)
    source.say(_frames(_tone(5, 8000) + _tone(5, 100)))
    first_at = time.monotonic()
    for _ in range(10):
        await source.next_pcm()
    assert source.utterance_ended_at is not None
    # frame 0 goes out at once; the speech ends after 5 frames, 5 frames before the audio does
    assert source.utterance_ended_at == pytest.approx(first_at + 5 * FRAME_S, abs=0.01)
