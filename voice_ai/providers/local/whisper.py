"""faster-whisper speech to text: ``tiny.en`` int8 on CPU, float16 on CUDA when present.

Phone utterances are a few seconds long, but Whisper's encoder always sees a 30 s window
(faster-whisper pads every segment to 3000 feature frames), so most of its work is on padding.
An utterance shorter than ``window_s`` is encoded in a ``window_s`` window instead (CTranslate2
takes any length up to 3000 frames): with ``tiny.en`` on 2 CPU cores a 2.5 s question takes
~0.2 s instead of ~0.6 s; word error rate on 32 synthesized lines 2.7 % vs 1.6 % at 30 s
(within noise, tests/test_whisper_window.py compares the two). Windows much shorter than
10 s make the decoder repeat itself, hence the 5 s floor. ``window_s = 30`` is stock faster-whisper;
longer utterances always take that path.

``WhisperSTT`` is the livekit provider over the model: non-streaming (``recognize`` of one
utterance), so the call segments speech with its VAD first (``stt.StreamAdapter`` or the
stage's own segmenter, ``voice_ai.resilience.stt_stage``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from livekit.agents import APIConnectionError, APIConnectOptions, stt, utils
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from voice_ai.audio import concat_frames, resample_pcm
from voice_ai.errors import TransientProviderError

__all__ = ["WhisperEngine", "WhisperSTT", "pick_device"]

logger = logging.getLogger(__name__)
WHISPER_SAMPLE_RATE = 16_000
FULL_WINDOW_S = 30.0
_FRAMES_PER_S = 100  # Whisper's feature hop is 10 ms
_NO_SPEECH_THRESHOLD = 0.6  # faster-whisper's defaults for dropping a silent segment
_LOG_PROB_THRESHOLD = -1.0
# faster-whisper's default: a decode whose text compresses better than this repeats itself
# ("Bye. Bye. Bye. ..."); stock whisper then decodes again at higher temperatures
_COMPRESSION_RATIO_THRESHOLD = 2.4
# a phone line says at most ~5 tokens a second; more than this is a decoding loop, cut short
# (a batch waits for its longest decode, so one loop would hold every caller in the batch)
_MAX_TOKENS_PER_S = 12
_MIN_TOKENS = 16
# the same run of tokens twice in one line is the decoder repeating a sentence, not a caller
_REPEAT_TOKENS = 8
MAX_BATCH = 8
T = TypeVar("T")


def pick_device(device: str, compute_type: str) -> tuple[str, str]:
    """Resolve ``auto`` device and compute type: CUDA + float16 when a GPU is visible."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


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
        self._lock = asyncio.Lock()  # one model run at a time (not re-entrant on CPU)
        self._waiting: list[tuple[Any, asyncio.Future[str]]] = []
        self._batcher: asyncio.Task[None] | None = None
        self.transcribe_sync(bytes(WHISPER_SAMPLE_RATE * 2), WHISPER_SAMPLE_RATE)  # warm up
        logger.info("whisper model loaded", extra={"device": self.device,
                                                    "compute_type": self.compute_type})

    def transcribe_sync(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        audio = _to_16k(pcm16, sample_rate)
        if self._fits_window(audio, language):
            return self._transcribe_windows([audio])[0]
        return self._transcribe_full(audio, language)

    def _fits_window(self, audio: Any, language: str) -> bool:
        """Shorter than the window by at least a second (room after the speech)."""
        seconds = len(audio) / WHISPER_SAMPLE_RATE
        return self.window_s < FULL_WINDOW_S and seconds + 1.0 <= self.window_s \
            and language == "en"

    def _transcribe_full(self, audio: Any, language: str) -> str:
        segments, _info = self._model.transcribe(
            audio, language=language, beam_size=1, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True,
        )
        return " ".join(s.text.strip() for s in segments).strip()

    def _transcribe_windows(self, audios: list[Any]) -> list[str]:
        """Utterances that fit the window, encoded and decoded as one batch.

        Greedy decoding in the short window has no temperature fallback; a decode that loops
        (too repetitive, a run of tokens said twice, or cut at the length a line of that
        duration can hold) is decoded again on the stock path, which has it. Each utterance is
        padded on its own (a batch's encoder output equals one-by-one's); the batched decoder
        is not bit-identical to one-by-one, so a word the model is unsure of can come out
        differently either way.
        """
        import ctranslate2

        frames = int(self.window_s * _FRAMES_PER_S)
        extractor = self._model.feature_extractor
        features = np.stack([
            extractor(a, padding=max(0, frames * extractor.hop_length - len(a)))[:, :frames]
            for a in audios])
        encoded = self._model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features)), to_cpu=False)
        tok = self._tokenizer
        prompt = [*tok.sot_sequence, tok.no_timestamps]
        longest_s = max(len(a) for a in audios) / WHISPER_SAMPLE_RATE
        new_tokens = _MIN_TOKENS + math.ceil(longest_s * _MAX_TOKENS_PER_S)
        max_length = min(self._model.max_length, len(prompt) + new_tokens)
        results = self._model.model.generate(
            encoded, [prompt] * len(audios), beam_size=1,
            max_length=max_length, suppress_blank=True, suppress_tokens=[-1],
            return_scores=True, return_no_speech_prob=True)
        texts = []
        for audio, result in zip(audios, results, strict=True):
            tokens = [t for t in result.sequences_ids[0] if t < tok.eot]
            # scores are length-normalised (length_penalty 1), as faster-whisper computes them
            avg_log_prob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            silent = (result.no_speech_prob > _NO_SPEECH_THRESHOLD
                      and avg_log_prob < _LOG_PROB_THRESHOLD)
            text = "" if silent else str(tok.decode(tokens)).strip()
            limit = math.ceil(len(audio) / WHISPER_SAMPLE_RATE * _MAX_TOKENS_PER_S) + _MIN_TOKENS
            if text and (_compression_ratio(text) > _COMPRESSION_RATIO_THRESHOLD
                         or len(tokens) >= limit or _repeats(tokens, _REPEAT_TOKENS)):
                logger.info("whisper decode looped in the short window; decoding again on "
                            "the stock path", extra={"tokens": len(tokens)})
                text = self._transcribe_full(audio, "en")
            texts.append(text)
        return texts

    async def transcribe(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        """Requests that arrive while the model is busy are batched: with ``tiny.en`` on 2 CPU
        cores a batch of 5 takes ~0.11 s per utterance instead of ~0.18 s one by one."""
        audio = _to_16k(pcm16, sample_rate)
        if not self._fits_window(audio, language):
            async with self._lock:
                return await self._in_thread(self._transcribe_full, audio, language)
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.append((audio, done))
        if self._batcher is None or self._batcher.done():
            self._batcher = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._waiting:
            async with self._lock:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                try:
                    texts = await self._in_thread(self._transcribe_windows, [a for a, _ in batch])
                except Exception as e:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(e)
                    continue
            for (_, done), text in zip(batch, texts, strict=True):
                if not done.done():
                    done.set_result(text)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except RuntimeError as e:  # CUDA out of memory and the like: another worker may do
            raise TransientProviderError(str(e), provider=self.name) from e


def _compression_ratio(text: str) -> float:
    """As faster-whisper measures repetition: the text's size over its zlib-compressed size."""
    data = text.encode()
    return len(data) / len(zlib.compress(data))


def _repeats(tokens: list[int], n: int) -> bool:
    """Whether some run of ``n`` tokens occurs twice."""
    seen: set[tuple[int, ...]] = set()
    for i in range(len(tokens) - n + 1):
        run = tuple(tokens[i:i + n])
        if run in seen:
            return True
        seen.add(run)
    return False


def _to_16k(pcm16: bytes, sample_rate: int) -> Any:
    pcm16k = resample_pcm(pcm16, sample_rate, WHISPER_SAMPLE_RATE)
    return np.frombuffer(pcm16k, dtype=np.int16).astype(np.float32) / 32768.0


class WhisperSTT(stt.STT[Any]):
    """faster-whisper as a livekit STT: one utterance in, its final transcript out."""

    def __init__(self, engine: WhisperEngine) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.engine = engine

    @property
    def provider(self) -> str:
        return self.engine.name

    @property
    def model(self) -> str:
        return Path(self.engine.model_path).name

    async def _recognize_impl(
        self, buffer: utils.AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = concat_frames(buffer) if isinstance(buffer, list) else buffer
        lang = language if isinstance(language, str) else "en"
        try:
            text = await self.engine.transcribe(frame.data.tobytes(), frame.sample_rate, lang)
        except TransientProviderError as e:
            raise APIConnectionError(str(e), retryable=False) from e
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode(lang), text=text)])
