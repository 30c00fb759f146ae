"""ConversationRecorder: both sides on one timeline, saved as a stereo WAV (caller left)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from voice_ai.audio import frame_from_pcm, rms
from voice_ai.pipeline.recorder import ConversationRecorder

pytestmark = pytest.mark.unit


def _tone(rate: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8_000).astype(np.int16).tobytes()


def test_both_sides_land_where_they_were_heard(tmp_path: Path) -> None:
    recorder = ConversationRecorder()
    recorder.start(at=100.0)
    recorder.add_caller(_tone(16_000, 0.5), at=100.0)
    for i in range(0, 24_000, 480):  # the agent at 24 kHz from t = 1 s: resampled to 16 kHz
        recorder.add_agent(frame_from_pcm(_tone(24_000, 1.0)[i * 2 : (i + 480) * 2], 24_000),
                           at=101.0 + i / 24_000)
    recorder.truncate_agent(at=101.5)  # barge-in: the rest was never heard
    path = recorder.save(tmp_path / "call.wav")
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 16_000)
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, 2)
    caller, agent = stereo[:, 0], stereo[:, 1]
    assert rms(caller[:8_000].tobytes()) > 3_000 and rms(caller[8_000:].tobytes()) == 0
    assert rms(agent[:16_000].tobytes()) == 0
    assert rms(agent[16_100:23_900].tobytes()) > 3_000
    assert len(agent) == pytest.approx(24_000, abs=200)  # nothing after the barge-in
    # 0.5 s heard, 96 % of a sine's samples above the voiced level, less the resampler's lag
    assert 0.43 < recorder.agent_voiced_seconds < 0.49
