"""A call's voice: the configured provider, its cluster-wide breaker, a fallback voice.

Each reply (one synthesis stream, text streamed in as the LLM writes it) is one breaker
request, which reports success at its first audio (its slot is then free for the next call's
reply) and a failure after that as a later outcome. Refused, the reply is spoken by the
fallback (Piper). A provider that fails mid-reply
hands the rest of the reply to the fallback: the words it already spoke are known from its
aligned transcript (Cartesia's word timestamps) or, without one, estimated from the audio's
length at ``words_per_s``; the fallback speaks the remaining text. The fallback voice's audio
is resampled to the call's rate (``voice_ai.audio.Resampler``, its tail flushed at the end).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from livekit.agents import APIConnectOptions, tts, utils
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT

from voice_ai.audio import Resampler
from voice_ai.resilience.gate import Outcome, ProviderBoard, report_soon
from voice_ai.resilience.served import SERVED, Served, ServedEvent

__all__ = ["StageTTS"]

logger = logging.getLogger("voice_ai.fallback")
NO_RETRY = APIConnectOptions(max_retry=0)
_FLUSH = object()


class StageTTS(tts.TTS[ServedEvent]):
    def __init__(self, primary: tts.TTS[Any], *, name: str,
                 fallback: tts.TTS[Any] | None = None, fallback_name: str = "",
                 board: ProviderBoard | None = None, words_per_s: float = 2.5) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=True),
                         sample_rate=primary.sample_rate, num_channels=1)
        if fallback is not None and board is None:
            raise ValueError("a fallback needs the breaker board that decides when to use it")
        self.primary, self.fallback = primary, fallback
        self.name, self.fallback_name = name, fallback_name
        self.board = board
        self.words_per_s = words_per_s
        for inner in (primary, fallback):
            if inner is not None:
                inner.on("metrics_collected", self._forward_metrics)

    @property
    def provider(self) -> str:
        return self.name

    def _forward_metrics(self, *args: Any) -> None:
        self.emit("metrics_collected", *args)

    def prewarm(self) -> None:
        """Passed on to the provider (Cartesia opens its WebSocket before the first reply)."""
        self.primary.prewarm()

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = NO_RETRY) -> tts.ChunkedStream:
        return self._synthesize_with_stream(text, conn_options=conn_options)

    def stream(self, *, conn_options: APIConnectOptions = NO_RETRY) -> tts.SynthesizeStream:
        return _StageSynthesizeStream(stage=self, conn_options=conn_options)


class _StageSynthesizeStream(tts.SynthesizeStream):
    _tts: StageTTS

    def __init__(self, *, stage: StageTTS, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=stage, conn_options=conn_options)
        self._inputs: list[Any] = []  # text pieces and _FLUSH, everything pushed so far
        self._ended = False
        self._leg: tts.SynthesizeStream | None = None
        self._words_spoken = 0
        self._audio_s = 0.0

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        stage = self._tts
        output_emitter.initialize(request_id=utils.shortuuid("tts_"),
                                  sample_rate=stage.sample_rate, num_channels=1,
                                  mime_type="audio/pcm", stream=True)
        output_emitter.start_segment(segment_id=utils.shortuuid())
        feeder = asyncio.create_task(self._forward_input())
        lease = utils.shortuuid("tts_")
        admitted = alive = False
        board = stage.board

        def on_alive() -> None:  # the provider speaks: its breaker slot is free at once
            nonlocal alive
            alive = True
            if board is not None:
                report_soon(board, stage.name, Outcome.success())

        try:
            if board is not None:
                admitted = (await board.acquire(stage.name, lease)).allowed
            if board is None or admitted:
                try:
                    await self._speak(output_emitter, stage.primary, stage.name, fallback=False,
                                      skip_words=0, on_alive=on_alive)
                except asyncio.CancelledError:
                    if board is not None and not alive:
                        await board.report(stage.name, None)
                    raise
                except Exception as e:
                    if board is None or stage.fallback is None:
                        raise
                    outcome = Outcome.failure(e)
                    await board.report(stage.name, outcome.later() if alive else outcome)
                    logger.warning("provider failed, reply continues on the fallback voice",
                                   extra={"stage": "tts", "provider": stage.name,
                                          "fallback": stage.fallback_name,
                                          "error": type(e).__name__,
                                          "words_spoken": self._words_spoken})
                else:
                    if board is not None and not alive:  # it ended without a sound
                        await board.report(stage.name, Outcome.success())
                    output_emitter.end_segment()
                    return
            assert stage.fallback is not None
            await self._speak(output_emitter, stage.fallback, stage.fallback_name, fallback=True,
                              skip_words=self._words_spoken)
            output_emitter.end_segment()
        finally:
            await utils.aio.cancel_and_wait(feeder)
            if self._leg is not None:
                await self._leg.aclose()
            if admitted and board is not None:
                await board.release(stage.name, lease)

    async def _forward_input(self) -> None:
        async for item in self._input_ch:
            piece = item if isinstance(item, str) else _FLUSH
            self._inputs.append(piece)
            if self._leg is not None:
                _feed(self._leg, piece)
        self._ended = True
        if self._leg is not None:
            self._leg.end_input()

    async def _speak(self, output_emitter: tts.AudioEmitter, voice: tts.TTS[Any], name: str, *,
                     fallback: bool, skip_words: int,
                     on_alive: Callable[[], None] | None = None) -> None:
        self._words_spoken = skip_words
        self._audio_s = 0.0
        leg = voice.stream(conn_options=NO_RETRY)
        self._leg = leg
        for piece in _after_words(self._inputs, skip_words):  # a replay, when taking over
            _feed(leg, piece)
        if self._ended:
            leg.end_input()
        resampler = Resampler(voice.sample_rate, self._tts.sample_rate)
        announced = False
        timed_words = 0
        async for ev in leg:
            if not announced:
                announced = True
                self._mark_started()
                self._tts.emit(SERVED, Served("tts", name, fallback=fallback))
                if on_alive is not None:
                    on_alive()
            output_emitter.push(resampler.push_pcm(ev.frame.data.tobytes()))
            self._audio_s += ev.frame.duration
            timed = ev.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT) or []
            timed_words += sum(len(str(t).split()) for t in timed)
            self._words_spoken = skip_words + (timed_words if timed_words else
                                               int(self._audio_s * self._tts.words_per_s))
        output_emitter.push(resampler.flush_pcm())


def _feed(leg: tts.SynthesizeStream, piece: Any) -> None:
    if piece is _FLUSH:
        leg.flush()
    else:
        leg.push_text(piece)


def _after_words(inputs: list[Any], skip_words: int) -> list[Any]:
    """What to feed a voice taking over after ``skip_words`` words were spoken: the text pushed
    so far without those words (one piece), then a flush if there was one."""
    if skip_words <= 0:
        return list(inputs)
    text = "".join(p for p in inputs if p is not _FLUSH)
    rest = " ".join(text.split()[skip_words:])
    out: list[Any] = [rest + (" " if text.endswith(" ") else "")] if rest else []
    if any(p is _FLUSH for p in inputs):
        out.append(_FLUSH)
    return out
