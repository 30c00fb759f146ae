"""livekit-agents STT / LLM / TTS classes over our engines, so ``AgentSession`` drives them.

An engine is anything that follows ``voice_ai.providers.engines``: a local model in the same
process (tests, the no-Ray baseline) or a pool client that sends the work to provider actors.
The adapters only translate: audio frames to PCM, chat context to messages, PCM chunks to the
audio emitter, and our provider errors to livekit's ``APIError`` family.

Which provider actually served a request (for fallback accounting) is read from the engine's
optional ``served_by`` attribute after the request, and kept per stage in ``ServedBy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    llm,
    stt,
    tts,
    utils,
)
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from voice_ai.errors import PermanentProviderError, ProviderError
from voice_ai.providers.engines import (
    ChatMessage,
    SpeechSynthesizer,
    SpeechToText,
    TextGenerator,
)

__all__ = ["EngineLLM", "EngineSTT", "EngineTTS", "ServedBy", "chat_messages"]


@dataclass
class ServedBy:
    """The provider that served the latest request of each stage in one call."""

    stt: str = ""
    llm: str = ""
    tts: str = ""


def _served(engine: object) -> str:
    return str(getattr(engine, "served_by", "") or getattr(engine, "name", ""))


def _to_api_error(e: ProviderError) -> Exception:
    if isinstance(e, PermanentProviderError):
        return APIStatusError(str(e), status_code=e.status_code or 400, retryable=False)
    return APIConnectionError(str(e), retryable=False)  # our pool already retried/fell back


class EngineSTT(stt.STT[Any]):
    """Non-streaming STT: AgentSession wraps it in ``stt.StreamAdapter`` with the VAD."""

    def __init__(self, engine: SpeechToText, served: ServedBy | None = None) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._engine = engine
        self._served = served or ServedBy()

    @property
    def provider(self) -> str:
        return self._engine.name

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        lang = language if isinstance(language, str) else "en"
        try:
            text = await self._engine.transcribe(frame.data.tobytes(), frame.sample_rate, lang)
        except ProviderError as e:
            raise _to_api_error(e) from e
        self._served.stt = _served(self._engine)
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language=LanguageCode(lang), text=text)],
        )


def chat_messages(chat_ctx: llm.ChatContext) -> list[ChatMessage]:
    """Plain role/content messages from a chat context (text only, tools not used here)."""
    messages: list[ChatMessage] = []
    for item in chat_ctx.items:
        if item.type != "message":
            continue
        text = (item.text_content or "").strip()
        if not text:
            continue
        role = "system" if item.role in ("system", "developer") else item.role
        messages.append({"role": role, "content": text})
    return messages


class EngineLLM(llm.LLM[Any]):
    def __init__(self, engine: TextGenerator, served: ServedBy | None = None) -> None:
        super().__init__()
        self._engine = engine
        self._served = served or ServedBy()

    @property
    def provider(self) -> str:
        return self._engine.name

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        return _EngineLLMStream(self, chat_ctx=chat_ctx, tools=tools or [],
                                conn_options=conn_options)


class _EngineLLMStream(llm.LLMStream):
    _llm: EngineLLM

    async def _run(self) -> None:
        request_id = utils.shortuuid("llm_")
        engine = self._llm._engine
        try:
            async for delta in engine.generate(chat_messages(self._chat_ctx)):
                self._event_ch.send_nowait(
                    llm.ChatChunk(
                        id=request_id, delta=llm.ChoiceDelta(role="assistant", content=delta)
                    )
                )
        except ProviderError as e:
            raise _to_api_error(e) from e
        self._llm._served.llm = _served(engine)


class EngineTTS(tts.TTS[Any]):
    """Non-streaming TTS per sentence: AgentSession wraps it in ``tts.StreamAdapter``."""

    def __init__(self, engine: SpeechSynthesizer, served: ServedBy | None = None) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=engine.sample_rate,
            num_channels=1,
        )
        self._engine = engine
        self._served = served or ServedBy()

    @property
    def provider(self) -> str:
        return self._engine.name

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _EngineChunkedStream(tts=self, input_text=text, conn_options=conn_options)


class _EngineChunkedStream(tts.ChunkedStream):
    _tts: EngineTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        engine = self._tts._engine
        output_emitter.initialize(
            request_id=utils.shortuuid("tts_"),
            sample_rate=engine.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
            frame_size_ms=50,
        )
        try:
            async for chunk in engine.synthesize(self._input_text):
                output_emitter.push(chunk)
        except ProviderError as e:
            raise _to_api_error(e) from e
        output_emitter.flush()
        self._tts._served.tts = _served(engine)
