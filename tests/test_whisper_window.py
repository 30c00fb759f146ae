"""The short encoder window of the whisper engine: the same words as stock faster-whisper on
real synthesized speech, and utterances too long for the window take the stock 30 s path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engines import local_engines
from voice_ai.config import Settings
from voice_ai.providers.local.whisper import WhisperEngine

UTTERANCES = [
    "Hi, what are your opening hours on Friday?",
    "I would like to book an appointment for next Tuesday morning.",
    "Yes.",
]


@pytest.fixture(scope="module")
def engines() -> tuple[WhisperEngine, Any]:
    stt, _llm, tts = local_engines()
    assert isinstance(stt, WhisperEngine) and stt.window_s == Settings().whisper_window_s
    return stt, tts


def test_short_window_hears_the_same_words_as_the_full_window(
        engines: tuple[WhisperEngine, Any]) -> None:
    stt, tts = engines
    for text in UTTERANCES:
        pcm = tts.synthesize_sync(text)
        windowed = stt.transcribe_sync(pcm, tts.sample_rate)
        assert windowed == _stock(stt, pcm, tts.sample_rate), text
        assert windowed  # and it heard something


def test_utterance_longer_than_the_window_takes_the_stock_path(
        engines: tuple[WhisperEngine, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    stt, tts = engines
    pcm = tts.synthesize_sync(UTTERANCES[0])
    seconds = len(pcm) / 2 / tts.sample_rate
    calls: list[str] = []
    real = stt._transcribe_window
    monkeypatch.setattr(stt, "_transcribe_window", lambda audio: calls.append("w") or real(audio))
    stt.transcribe_sync(pcm, tts.sample_rate)
    assert calls == ["w"]
    # pad the same speech with silence past the window: the windowed path must not be used
    silence = bytes(int((stt.window_s - seconds + 1) * tts.sample_rate) * 2)
    text = stt.transcribe_sync(pcm + silence, tts.sample_rate)
    assert calls == ["w"]
    assert "opening hours" in text.lower()


def test_window_setting_is_bounded() -> None:
    with pytest.raises(ValueError, match="whisper_window_s"):
        Settings(whisper_window_s=2.0)


def _stock(stt: WhisperEngine, pcm: bytes, rate: int) -> str:
    window = stt.window_s
    stt.window_s = 30.0  # a 30 s window is stock faster-whisper
    try:
        return stt.transcribe_sync(pcm, rate)
    finally:
        stt.window_s = window
