"""livekit providers whose work happens in a provider pool, reached through ``PoolPort``.

To ``AgentSession`` these are ordinary ``stt.STT`` / ``llm.LLM`` / ``tts.TTS``; each request or
stream becomes one ``PoolStream`` to some worker (``voice_ai.providers.pool``):

- ``PooledSTT``: whisper is non-streaming (``recognize`` of one VAD-segmented utterance);
  Deepgram, when its sessions live in the pool, is a stream for the whole call.
- ``PooledLLM``: the chat context and tool schemas go out, chunks (text and tool calls) come
  back as they are generated.
- ``PooledTTS``: text goes in as the LLM produces it, audio comes back as it is synthesized.

Errors from the pool (``ProviderError``) become livekit's ``APIError`` family here, so the
session and the fallbacks above treat them as provider failures.
"""

from __future__ import annotations

import asyncio
from typing import Any

from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    llm,
    stt,
    tts,
    utils,
)
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from voice_ai.audio import concat_frames
from voice_ai.errors import ProviderError
from voice_ai.providers.pool import ProviderPool
from voice_ai.providers.wire import (
    AudioIn,
    AudioOut,
    EndInput,
    Flush,
    LlmChunkOut,
    LlmRequest,
    SpeechEventOut,
    SttOpen,
    SttRecognize,
    TextIn,
    TtsOpen,
)
from voice_ai.resilience.classify import to_api_error

__all__ = ["PooledLLM", "PooledSTT", "PooledTTS"]


def _language(language: NotGivenOr[str]) -> str:
    return language if isinstance(language, str) else "en"


class PooledSTT(stt.STT[Any]):
    def __init__(self, pool: ProviderPool, *, streaming: bool) -> None:
        super().__init__(capabilities=stt.STTCapabilities(
            streaming=streaming, interim_results=streaming))
        self.pool = pool

    @property
    def provider(self) -> str:
        return self.pool.provider

    async def _recognize_impl(
        self, buffer: utils.AudioBuffer, *, language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = concat_frames(buffer) if isinstance(buffer, list) else buffer
        request = SttRecognize(AudioIn.of(frame), language=_language(language))
        stream = self.pool.open(request)
        try:
            async for out in stream.outputs():
                assert isinstance(out, SpeechEventOut)
                return out.event()
        except ProviderError as e:
            raise to_api_error(e) from e
        finally:
            await stream.aclose()
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT)

    def stream(
        self, *, language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        if not self.capabilities.streaming:
            return super().stream(language=language, conn_options=conn_options)
        return _PooledRecognizeStream(stt=self, language=_language(language),
                                      conn_options=conn_options)


class _PooledRecognizeStream(stt.RecognizeStream):
    _stt: PooledSTT

    def __init__(self, *, stt: PooledSTT, language: str, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=stt, conn_options=conn_options)
        self._language = language

    async def _run(self) -> None:
        stream = self._stt.pool.open(SttOpen(language=self._language))

        async def forward() -> None:
            async for item in self._input_ch:
                if isinstance(item, rtc.AudioFrame):
                    stream.send(AudioIn.of(item))
                else:
                    stream.send(Flush())
            stream.send(EndInput())

        task = asyncio.create_task(forward())
        try:
            async for out in stream.outputs():
                assert isinstance(out, SpeechEventOut)
                self._event_ch.send_nowait(out.event())
        except ProviderError as e:
            raise to_api_error(e) from e
        finally:
            await utils.aio.cancel_and_wait(task)
            await stream.aclose()


class PooledLLM(llm.LLM[Any]):
    def __init__(self, pool: ProviderPool) -> None:
        super().__init__()
        self.pool = pool

    @property
    def provider(self) -> str:
        return self.pool.provider

    def chat(
        self, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        request = LlmRequest.of(
            chat_ctx, list(tools or []),
            tool_choice=tool_choice if isinstance(tool_choice, str) else None,
            parallel_tool_calls=parallel_tool_calls if isinstance(parallel_tool_calls, bool)
            else None)
        return _PooledLLMStream(self, request, chat_ctx=chat_ctx, tools=list(tools or []),
                                conn_options=conn_options)


class _PooledLLMStream(llm.LLMStream):
    _llm: PooledLLM

    def __init__(self, pooled: PooledLLM, request: LlmRequest, *, chat_ctx: llm.ChatContext,
                 tools: list[llm.Tool], conn_options: APIConnectOptions) -> None:
        super().__init__(pooled, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._request = request

    async def _run(self) -> None:
        stream = self._llm.pool.open(self._request)
        try:
            async for out in stream.outputs():
                assert isinstance(out, LlmChunkOut)
                self._event_ch.send_nowait(out.chunk())
        except ProviderError as e:
            raise to_api_error(e) from e
        finally:
            await stream.aclose()


class PooledTTS(tts.TTS[Any]):
    """Streaming text in; the voice in the pool decides how much text it waits for (Piper:
    the first clause; Cartesia: what its tokenizer passes on)."""

    def __init__(self, pool: ProviderPool, *, sample_rate: int) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=True),
                         sample_rate=sample_rate, num_channels=1)
        self.pool = pool

    @classmethod
    async def connect(cls, pool: ProviderPool) -> PooledTTS:
        return cls(pool, sample_rate=await pool.port.sample_rate())

    @property
    def provider(self) -> str:
        return self.pool.provider

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _PooledChunkedStream(tts=self, input_text=text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.SynthesizeStream:
        return _PooledSynthesizeStream(tts=self, conn_options=conn_options)


class _PooledChunkedStream(tts.ChunkedStream):
    _tts: PooledTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(request_id=utils.shortuuid("tts_"),
                                  sample_rate=self._tts.sample_rate, num_channels=1,
                                  mime_type="audio/pcm")
        stream = self._tts.pool.open(TtsOpen(sample_rate=self._tts.sample_rate))
        stream.send(TextIn(self._input_text))
        stream.send(EndInput())
        try:
            async for out in stream.outputs():
                assert isinstance(out, AudioOut)
                output_emitter.push(out.pcm)
        except ProviderError as e:
            raise to_api_error(e) from e
        finally:
            await stream.aclose()
        output_emitter.flush()


class _PooledSynthesizeStream(tts.SynthesizeStream):
    _tts: PooledTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(request_id=utils.shortuuid("tts_"),
                                  sample_rate=self._tts.sample_rate, num_channels=1,
                                  mime_type="audio/pcm", stream=True)
        output_emitter.start_segment(segment_id=utils.shortuuid())
        stream = self._tts.pool.open(TtsOpen(sample_rate=self._tts.sample_rate))

        async def forward() -> None:
            async for item in self._input_ch:
                if isinstance(item, str):
                    self._mark_started()
                    stream.send(TextIn(item))
                else:
                    stream.send(Flush())
            stream.send(EndInput())

        task = asyncio.create_task(forward())
        try:
            async for out in stream.outputs():
                assert isinstance(out, AudioOut)
                output_emitter.push(out.pcm)
        except ProviderError as e:
            raise to_api_error(e) from e
        finally:
            await utils.aio.cancel_and_wait(task)
            await stream.aclose()
        output_emitter.end_segment()
