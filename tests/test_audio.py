"""voice_ai.audio: the one module that resamples, frames and measures audio."""

from __future__ import annotations

import math

import numpy as np
import pytest
from livekit import rtc

from voice_ai.audio import (
    SAMPLE_WIDTH,
    AnyRateResampler,
    Resampler,
    concat_frames,
    dbfs_to_rms,
    downmix,
    frame_from_pcm,
    frame_rms,
    interleave,
    pcm_of,
    resample_pcm,
    rms,
    rms_dbfs,
    silence,
    slice_frames,
)

pytestmark = pytest.mark.unit


def _sine(rate: int, seconds: float, hz: float = 440.0, amplitude: int = 8000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * amplitude).astype(np.int16).tobytes()


def _peak_hz(pcm16: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm16, dtype=np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


def _samples(pcm16: bytes) -> int:
    return len(pcm16) // SAMPLE_WIDTH


# --- frames ------------------------------------------------------------------------------
def test_frame_from_pcm_drops_a_trailing_half_sample() -> None:
    frame = frame_from_pcm(b"\x01\x00\x02\x00\x03", 16_000)
    assert frame.samples_per_channel == 2
    assert frame.sample_rate == 16_000 and frame.num_channels == 1
    assert pcm_of([frame]) == b"\x01\x00\x02\x00"


def test_frame_from_pcm_refuses_a_bad_rate() -> None:
    with pytest.raises(ValueError, match="sample_rate must be positive"):
        frame_from_pcm(b"\x00\x00", 0)


def test_slice_frames_pads_the_last_frame_or_keeps_it_short() -> None:
    pcm = _sine(16_000, 0.05)  # 50 ms = 2.5 frames of 20 ms
    padded = slice_frames(pcm, 16_000, frame_ms=20)
    assert [f.samples_per_channel for f in padded] == [320, 320, 320]
    assert pcm_of(padded)[len(pcm):] == bytes(len(pcm_of(padded)) - len(pcm))  # silence
    short = slice_frames(pcm, 16_000, frame_ms=20, pad=False)
    assert [f.samples_per_channel for f in short] == [320, 320, 160]
    assert pcm_of(short) == pcm


def test_slice_frames_refuses_frames_shorter_than_a_sample() -> None:
    with pytest.raises(ValueError, match="frame_ms must be positive"):
        slice_frames(b"\x00\x00", 16_000, frame_ms=0)
    with pytest.raises(ValueError, match="less than one sample"):
        slice_frames(b"\x00\x00", 100, frame_ms=1)


def test_concat_frames_joins_in_order() -> None:
    frames = slice_frames(_sine(24_000, 0.1), 24_000, frame_ms=20)
    joined = concat_frames(frames)
    assert joined.samples_per_channel == sum(f.samples_per_channel for f in frames)
    assert pcm_of([joined]) == pcm_of(frames)


def test_silence_has_the_asked_length_and_no_level() -> None:
    quiet = silence(0.25, 16_000)
    assert _samples(quiet) == 4_000
    assert rms(quiet) == 0.0
    assert rms_dbfs(quiet) == -math.inf


# --- resampling --------------------------------------------------------------------------
@pytest.mark.parametrize(("src", "dst"), [(22_050, 16_000), (48_000, 24_000), (16_000, 48_000)])
def test_resample_keeps_length_and_pitch(src: int, dst: int) -> None:
    pcm = _sine(src, 1.0, hz=440.0)
    out = resample_pcm(pcm, src, dst)
    assert _samples(out) == pytest.approx(dst, abs=dst * 0.005)  # the tail is not lost
    assert _peak_hz(out, dst) == pytest.approx(440.0, abs=2.0)
    assert rms(out) == pytest.approx(rms(pcm), rel=0.05)


def test_streaming_resampler_in_small_pushes_loses_nothing_and_can_be_reused() -> None:
    pcm = _sine(22_050, 1.0)
    resampler = Resampler(22_050, 16_000)
    for _ in range(2):  # a flushed resampler serves the next stream
        out = b"".join(resampler.push_pcm(pcm[i : i + 882]) for i in range(0, len(pcm), 882))
        out += resampler.flush_pcm()
        assert _samples(out) == pytest.approx(16_000, abs=2)


def test_identity_rate_passes_frames_through_untouched() -> None:
    frame = frame_from_pcm(_sine(16_000, 0.02), 16_000)
    resampler = Resampler(16_000, 16_000)
    assert resampler.push(frame) == [frame]
    assert resampler.flush() == []
    assert resample_pcm(b"", 16_000, 24_000) == b""


def test_resampler_refuses_frames_of_another_rate_and_bad_rates() -> None:
    with pytest.raises(ValueError, match="pushed into a resampler expecting 16000 Hz"):
        Resampler(16_000, 24_000).push(frame_from_pcm(bytes(960), 48_000))
    with pytest.raises(ValueError, match="sample rates must be positive"):
        Resampler(0, 16_000)


def test_any_rate_resampler_follows_a_change_of_input_rate() -> None:
    """A voice at 22.05 kHz then a fallback at 16 kHz: both come out at 24 kHz, in order."""
    resampler = AnyRateResampler(24_000)
    first = _sine(22_050, 0.5, hz=300.0)
    second = _sine(16_000, 0.5, hz=1_000.0)
    out: list[rtc.AudioFrame] = []
    out += resampler.push(frame_from_pcm(first, 22_050))
    out += resampler.push(frame_from_pcm(second, 16_000))
    out += resampler.flush()
    assert all(f.sample_rate == 24_000 for f in out)
    pcm = pcm_of(out)
    assert _samples(pcm) == pytest.approx(24_000, abs=24)
    half = len(pcm) // 2 // SAMPLE_WIDTH * SAMPLE_WIDTH
    assert _peak_hz(pcm[: half - 4_800], 24_000) == pytest.approx(300.0, abs=3.0)
    assert _peak_hz(pcm[half + 4_800 :], 24_000) == pytest.approx(1_000.0, abs=3.0)
    assert resampler.flush() == []


# --- levels and channels -----------------------------------------------------------------
def test_rms_of_a_sine_is_its_amplitude_over_root_two() -> None:
    assert rms(_sine(16_000, 0.5, amplitude=10_000)) == pytest.approx(10_000 / math.sqrt(2),
                                                                       rel=0.01)
    assert rms(b"") == 0.0 and rms(b"\x01") == 0.0  # no whole sample


def test_rms_dbfs_is_relative_to_int16_full_scale() -> None:
    square = np.tile(np.array([32767, -32767], dtype=np.int16), 800).tobytes()
    assert rms_dbfs(square) == pytest.approx(0.0, abs=0.01)
    assert rms_dbfs(_sine(16_000, 0.5, amplitude=328)) == pytest.approx(-43.0, abs=0.1)


def test_a_frames_level_is_the_rms_of_its_samples_frame_after_frame() -> None:
    loud = frame_from_pcm(_sine(16_000, 0.02, amplitude=10_000), 16_000)
    quiet = frame_from_pcm(_sine(16_000, 0.02, amplitude=100), 16_000)
    for frame in (loud, loud, quiet, loud, quiet, quiet):  # the second look at a frame is free
        assert frame_rms(frame) == pytest.approx(rms(frame.data.tobytes()), rel=1e-12)
    assert frame_rms(frame_from_pcm(b"", 16_000)) == 0.0


def test_a_frames_level_is_kept_on_the_frame_and_read_from_there() -> None:
    frame = frame_from_pcm(_sine(16_000, 0.02, amplitude=10_000), 16_000)
    level = frame_rms(frame)
    assert list(frame.userdata.values()) == [level]  # kept with the frame, no shared state
    frame.userdata.update(dict.fromkeys(frame.userdata, -1.0))
    assert frame_rms(frame) == -1.0  # the second look reads it from there


def test_dbfs_to_rms_inverts_rms_dbfs() -> None:
    pcm = _sine(16_000, 0.5, amplitude=328)
    assert dbfs_to_rms(rms_dbfs(pcm)) == pytest.approx(rms(pcm), rel=1e-9)
    assert dbfs_to_rms(0.0) == 32768.0


def test_downmix_averages_interleaved_channels() -> None:
    stereo = np.array([100, 300, -50, -150, 7, 7], dtype=np.int16).tobytes()
    assert np.frombuffer(downmix(stereo, 2), dtype=np.int16).tolist() == [200, -100, 7]
    assert downmix(stereo + b"\x01", 2) == downmix(stereo, 2)  # a partial sample is dropped
    assert downmix(b"\x05\x00", 1) == b"\x05\x00"
    with pytest.raises(ValueError, match="channels must be >= 1"):
        downmix(stereo, 0)


def test_interleave_pads_the_shorter_channel_and_round_trips_with_downmix() -> None:
    left = np.array([1, 2, 3], dtype=np.int16).tobytes()
    right = np.array([10, 20], dtype=np.int16).tobytes()
    stereo = np.frombuffer(interleave(left, right), dtype=np.int16).tolist()
    assert stereo == [1, 10, 2, 20, 3, 0]
    assert downmix(interleave(left, left), 2) == left
    with pytest.raises(ValueError, match="at least one channel"):
        interleave()
