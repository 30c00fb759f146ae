"""Piper text to speech with the ``en_US-joe-medium`` voice, as a streaming livekit TTS.

``PiperTTS.stream()`` takes text as the LLM produces it and starts synthesizing at the first
clause (``voice_ai.providers.clauses``), not the first full sentence: a reply's first words
are heard while the LLM is still writing the rest. ``synthesize(text)`` speaks a whole text
(greeting, busy message, the simulated caller's lines).

``PiperEngine`` holds the model: one synthesis at a time (an ONNX session per voice), in a
thread so the event loop keeps serving audio; with ``cache_size`` > 0 (ENABLE_CACHING) the
audio of repeated texts (greeting, busy message, common clauses) is kept and replayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    tokenize,
    tts,
    utils,
)

from voice_ai.providers.clauses import ClauseTokenizer

__all__ = ["PiperEngine", "PiperTTS"]

logger = logging.getLogger(__name__)


@dataclass
class PiperEngine:
    voice_path: Path
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

    def synthesize_sync(self, text: str) -> bytes:
        """Mono 16-bit PCM at ``sample_rate`` for ``text`` (blocking)."""
        return b"".join(chunk.audio_int16_bytes for chunk in self._voice.synthesize(text))

    async def synthesize(self, text: str) -> bytes:
        """``synthesize_sync`` in a thread, one at a time, through the cache."""
        text = text.strip()
        if not text:
            return b""
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            self.cache_hits += 1
            return cached
        async with self._lock:
            audio = await asyncio.to_thread(self.synthesize_sync, text)
        if self.cache_size > 0:
            self._cache[text] = audio
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return audio


class PiperTTS(tts.TTS[Any]):
    """``frame_ms``: the size of the audio frames handed on (AUDIO_BUFFER_SIZE samples)."""

    def __init__(self, engine: PiperEngine, *, frame_ms: int = 100,
                 tokenizer: tokenize.SentenceTokenizer | None = None) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=True),
                         sample_rate=engine.sample_rate, num_channels=1)
        self.engine = engine
        self.frame_ms = frame_ms
        self._tokenizer = tokenizer or ClauseTokenizer()

    @property
    def provider(self) -> str:
        return self.engine.name

    @property
    def model(self) -> str:
        return Path(self.engine.voice_path).stem

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _PiperChunkedStream(tts=self, input_text=text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.SynthesizeStream:
        return _PiperStream(tts=self, conn_options=conn_options)


class _PiperChunkedStream(tts.ChunkedStream):
    _tts: PiperTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(request_id=utils.shortuuid("piper_"),
                                  sample_rate=self._tts.sample_rate, num_channels=1,
                                  mime_type="audio/pcm", frame_size_ms=self._tts.frame_ms)
        output_emitter.push(await self._tts.engine.synthesize(self._input_text))
        output_emitter.flush()


class _PiperStream(tts.SynthesizeStream):
    """Clauses are synthesized in order as they complete; each one's audio is pushed at once."""

    _tts: PiperTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(request_id=utils.shortuuid("piper_"),
                                  sample_rate=self._tts.sample_rate, num_channels=1,
                                  mime_type="audio/pcm", stream=True,
                                  frame_size_ms=self._tts.frame_ms)
        output_emitter.start_segment(segment_id=utils.shortuuid())
        clauses = self._tts._tokenizer.stream()

        async def forward() -> None:
            async for item in self._input_ch:
                if isinstance(item, str):
                    clauses.push_text(item)
                else:
                    clauses.flush()
            clauses.end_input()

        task = asyncio.create_task(forward())
        try:
            async for clause in clauses:
                if not clause.token.strip():
                    continue
                self._mark_started()
                output_emitter.push(await self._tts.engine.synthesize(clause.token))
                output_emitter.flush()
        finally:
            await utils.aio.cancel_and_wait(task)
            await clauses.aclose()
        output_emitter.end_segment()
