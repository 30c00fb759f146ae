"""faster-whisper speech to text: ``tiny.en`` int8 on CPU, float16 on CUDA when present."""

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
        self._lock = asyncio.Lock()
        self.transcribe_sync(bytes(WHISPER_SAMPLE_RATE * 2), WHISPER_SAMPLE_RATE)  # warm up
        logger.info("whisper model loaded", extra={"device": self.device,
                                                    "compute_type": self.compute_type})

    def transcribe_sync(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
        audio = resample_to_16k(audio, sample_rate)
        segments, _info = self._model.transcribe(
            audio, language=language, beam_size=1, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True,
        )
        return " ".join(s.text.strip() for s in segments).strip()

    async def transcribe(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        async with self._lock:
            try:
                return await asyncio.to_thread(self.transcribe_sync, pcm16, sample_rate, language)
            except RuntimeError as e:  # CUDA out of memory and the like: another worker may do
                raise TransientProviderError(str(e), provider=self.name) from e
