"""Piper text to speech with the ``en_US-joe-medium`` voice, streamed in fixed-size chunks."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = ["PiperEngine"]

T = TypeVar("T")


def _next_or_none(items: Iterator[T]) -> T | None:
    return next(items, None)

logger = logging.getLogger(__name__)
_BYTES_PER_SAMPLE = 2


@dataclass
class PiperEngine:
    """Synthesizes one sentence at a time so the first audio leaves before the text is done.

    ``chunk_samples`` is AUDIO_BUFFER_SIZE. With ``cache_size`` > 0 (ENABLE_CACHING) the audio of
    repeated texts (greeting, busy message, common phrases) is kept and replayed.
    """

    voice_path: Path
    chunk_samples: int = 2048
    cache_size: int = 64
    name: str = "piper"
    _cache: OrderedDict[str, bytes] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        from piper import PiperVoice

        self._voice = PiperVoice.load(str(self.voice_path))
        self.sample_rate: int = int(self._voice.config.sample_rate)
        self._lock = asyncio.Lock()
        self.cache_hits = 0
        self.synthesize_sync("Hello.")  # warm up the ONNX session

    def _sentences_sync(self, text: str) -> list[bytes]:
        return [chunk.audio_int16_bytes for chunk in self._voice.synthesize(text)]

    def synthesize_sync(self, text: str) -> bytes:
        return b"".join(self._sentences_sync(text))

    def _chunks(self, audio: bytes) -> list[bytes]:
        step = self.chunk_samples * _BYTES_PER_SAMPLE
        return [audio[i : i + step] for i in range(0, len(audio), step)]

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        text = text.strip()
        if not text:
            return
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            self.cache_hits += 1
            for chunk in self._chunks(cached):
                yield chunk
            return
        produced: list[bytes] = []
        async with self._lock:
            # Piper yields one chunk per sentence: step the generator in a thread so the first
            # sentence streams out while later ones are still being synthesized
            sentences = iter(self._voice.synthesize(text))
            while (sentence := await asyncio.to_thread(_next_or_none, sentences)) is not None:
                audio = sentence.audio_int16_bytes
                produced.append(audio)
                for piece in self._chunks(audio):
                    yield piece
        if self.cache_size > 0:
            self._cache[text] = b"".join(produced)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
