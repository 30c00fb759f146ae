"""faster-whisper speech to text: ``tiny.en`` int8 on CPU, float16 on CUDA when present.

Phone utterances are a few seconds long, but Whisper's encoder always sees a 30 s window
(faster-whisper pads every segment to 3000 feature frames), so most of its work is on padding.
An utterance shorter than ``window_s`` is encoded in a ``window_s`` window instead (CTranslate2
takes any length up to 3000 frames): with ``tiny.en`` on 2 CPU cores a 2.5 s question takes
~0.25 s instead of ~0.6 s, with the same words on our test utterances. Windows much shorter than
10 s make the decoder repeat itself, hence the 5 s floor. ``window_s = 30`` is stock faster-whisper;
longer utterances always take that path.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voice_ai.errors import TransientProviderError

__all__ = ["WhisperEngine", "pick_device"]

logger = logging.getLogger(__name__)
WHISPER_SAMPLE_RATE = 16_000
FULL_WINDOW_S = 30.0
_FRAMES_PER_S = 100  # Whisper's feature hop is 10 ms
_NO_SPEECH_THRESHOLD = 0.6  # faster-whisper's defaults for dropping a silent segment
_LOG_PROB_THRESHOLD = -1.0


def pick_device(device: str, compute_type: str) -> tuple[str, str]:
    """Resolve ``auto`` device and compute type: CUDA + float16 when a GPU is visible."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def resample_to_16k(samples: np.ndarray[Any, np.dtype[np.float32]], rate: int) -> Any:
    if rate == WHISPER_SAMPLE_RATE:
        return samples
    n_out = int(round(len(samples) * WHISPER_SAMPLE_RATE / rate))
    x_old = np.linspace(0.0, 1.0, num=len(samples), endpoint=False)
    x_new = np.linspace(0.0, 1.0, num=n_out, endpoint=False)
    return np.interp(x_new, x_old, samples).astype(np.float32)


@dataclass
class WhisperEngine:
    """One loaded model; one transcription at a time (the model is not re-entrant on CPU)."""

    model_path: Path
    device: str = "auto"
    compute_type: str = "auto"
    cpu_threads: int = 2
    window_s: float = 10.0
    name: str = "whisper"

    def __post_init__(self) -> None:
        from faster_whisper import WhisperModel

        self.device, self.compute_type = pick_device(self.device, self.compute_type)
        self._model = WhisperModel(
            str(self.model_path),  # a PosixPath raises TypeError in ctranslate2
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
        )
        from faster_whisper.tokenizer import Tokenizer

        self._tokenizer = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual,
                                    task="transcribe", language="en")
        self._lock = asyncio.Lock()
        self.transcribe_sync(bytes(WHISPER_SAMPLE_RATE * 2), WHISPER_SAMPLE_RATE)  # warm up
        logger.info("whisper model loaded", extra={"device": self.device,
                                                    "compute_type": self.compute_type})

    def transcribe_sync(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
        audio = resample_to_16k(audio, sample_rate)
        # one second of room after the speech; shorter utterances take the short window
        seconds = len(audio) / WHISPER_SAMPLE_RATE
        if self.window_s < FULL_WINDOW_S and seconds + 1.0 <= self.window_s and language == "en":
            return self._transcribe_window(audio)
        segments, _info = self._model.transcribe(
            audio, language=language, beam_size=1, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True,
        )
        return " ".join(s.text.strip() for s in segments).strip()

    def _transcribe_window(self, audio: Any) -> str:
        import ctranslate2

        frames = int(self.window_s * _FRAMES_PER_S)
        padding = frames * self._model.feature_extractor.hop_length - len(audio)
        features = self._model.feature_extractor(audio, padding=max(0, padding))[:, :frames]
        encoded = self._model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
            to_cpu=False)
        tok = self._tokenizer
        result = self._model.model.generate(
            encoded, [[*tok.sot_sequence, tok.no_timestamps]], beam_size=1,
            max_length=self._model.max_length, suppress_blank=True, suppress_tokens=[-1],
            return_scores=True, return_no_speech_prob=True)[0]
        tokens = [t for t in result.sequences_ids[0] if t < tok.eot]
        # scores are length-normalised (length_penalty 1), as faster-whisper computes them
        avg_log_prob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if result.no_speech_prob > _NO_SPEECH_THRESHOLD and avg_log_prob < _LOG_PROB_THRESHOLD:
            return ""
        return str(tok.decode(tokens)).strip()

    async def transcribe(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        async with self._lock:
            try:
                return await asyncio.to_thread(self.transcribe_sync, pcm16, sample_rate, language)
            except RuntimeError as e:  # CUDA out of memory and the like: another worker may do
                raise TransientProviderError(str(e), provider=self.name) from e
