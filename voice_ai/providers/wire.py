"""What crosses a process boundary between a call and a provider pool worker.

Small frozen dataclasses, so they pickle across Ray and tests can build them by hand. Each
stream to a worker starts with one *open* message and then carries inputs one way and
outputs the other:

    stage  open                     inputs (call -> worker)         outputs (worker -> call)
    stt    SttOpen (stream)         AudioIn, Flush, EndInput        SpeechEventOut ...
    stt    SttRecognize (unary)     -                               SpeechEventOut (one)
    llm    LlmRequest               -                               LlmChunkOut ...
    tts    TtsOpen                  TextIn, Flush, EndInput         AudioOut ...

livekit's own objects are converted at the edges: a ``ChatContext`` travels as its
``to_dict()`` and comes back with ``ChatContext.from_dict``; function tools travel as their
JSON schema (the worker's provider only needs the schema; the call runs the tool).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from livekit import rtc
from livekit.agents import llm, stt
from livekit.agents.language import LanguageCode

from voice_ai.audio import frame_from_pcm

__all__ = [
    "AudioIn",
    "AudioOut",
    "EndInput",
    "Flush",
    "LlmChunkOut",
    "LlmRequest",
    "OpenMessage",
    "SpeechEventOut",
    "StreamInput",
    "StreamOutput",
    "SttOpen",
    "SttRecognize",
    "TextIn",
    "ToolCallOut",
    "TtsOpen",
    "tool_schemas",
]


# --- inputs ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AudioIn:
    """Caller audio, mono 16-bit PCM."""

    pcm: bytes
    sample_rate: int

    @classmethod
    def of(cls, frame: rtc.AudioFrame) -> AudioIn:
        return cls(frame.data.tobytes(), frame.sample_rate)

    def frame(self) -> rtc.AudioFrame:
        return frame_from_pcm(self.pcm, self.sample_rate)


@dataclass(frozen=True, slots=True)
class TextIn:
    """Text for the voice, as the LLM produces it (any granularity)."""

    text: str


@dataclass(frozen=True, slots=True)
class Flush:
    """End of a segment: STT finalizes what it heard, TTS speaks what it holds."""


@dataclass(frozen=True, slots=True)
class EndInput:
    """No more input on this stream."""


StreamInput = AudioIn | TextIn | Flush | EndInput


# --- opens -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SttOpen:
    """A recognition stream (Deepgram live): audio in, speech events out."""

    language: str = "en"


@dataclass(frozen=True, slots=True)
class SttRecognize:
    """One utterance, already segmented by the caller's VAD (whisper)."""

    audio: AudioIn
    language: str = "en"


@dataclass(frozen=True, slots=True)
class LlmRequest:
    """One chat completion: the context (``ChatContext.to_dict()``) and the tools' schemas."""

    chat_ctx: dict[str, Any]
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None

    @classmethod
    def of(cls, chat_ctx: llm.ChatContext, tools: list[llm.Tool], *,
           tool_choice: Any = None, parallel_tool_calls: bool | None = None) -> LlmRequest:
        return cls(
            chat_ctx=chat_ctx.to_dict(exclude_image=True, exclude_audio=True,
                                      exclude_timestamp=False, exclude_metrics=True),
            tools=tuple(tool_schemas(tools)),
            tool_choice=tool_choice if isinstance(tool_choice, str) else None,
            parallel_tool_calls=parallel_tool_calls,
        )

    def context(self) -> llm.ChatContext:
        return llm.ChatContext.from_dict(self.chat_ctx)

    def stub_tools(self) -> list[llm.Tool]:
        """Tools with the same schemas, for the worker's provider: the provider only sends
        the schemas; calling a tool happens in the call, with the real function."""
        return [llm.function_tool(_not_called_here, raw_schema=s) for s in self.tools]


async def _not_called_here(raw_arguments: dict[str, object]) -> None:
    raise RuntimeError("tools run in the call, not in the provider pool")


@dataclass(frozen=True, slots=True)
class TtsOpen:
    """A synthesis stream at the caller's sample rate choice (the voice's own rate if 0)."""

    sample_rate: int = 0


OpenMessage = SttOpen | SttRecognize | LlmRequest | TtsOpen


# --- outputs -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SpeechEventOut:
    """A ``stt.SpeechEvent`` with its first alternative (all our STTs give one)."""

    type: str
    text: str = ""
    language: str = "en"
    confidence: float = 0.0
    start_time: float = 0.0
    end_time: float = 0.0
    request_id: str = ""
    speech_end_time: float | None = None

    @classmethod
    def of(cls, ev: stt.SpeechEvent) -> SpeechEventOut:
        alt = ev.alternatives[0] if ev.alternatives else None
        return cls(
            type=ev.type.value, request_id=ev.request_id, speech_end_time=ev.speech_end_time,
            text=alt.text if alt else "", language=str(alt.language) if alt else "en",
            confidence=alt.confidence if alt else 0.0,
            start_time=alt.start_time if alt else 0.0, end_time=alt.end_time if alt else 0.0,
        )

    def event(self) -> stt.SpeechEvent:
        kind = stt.SpeechEventType(self.type)
        alternatives = []
        if kind in (stt.SpeechEventType.INTERIM_TRANSCRIPT, stt.SpeechEventType.FINAL_TRANSCRIPT,
                    stt.SpeechEventType.PREFLIGHT_TRANSCRIPT):
            alternatives = [stt.SpeechData(
                language=LanguageCode(self.language), text=self.text,
                confidence=self.confidence, start_time=self.start_time,
                end_time=self.end_time)]
        return stt.SpeechEvent(type=kind, request_id=self.request_id, alternatives=alternatives,
                               speech_end_time=self.speech_end_time)


@dataclass(frozen=True, slots=True)
class ToolCallOut:
    name: str
    arguments: str
    call_id: str


@dataclass(frozen=True, slots=True)
class LlmChunkOut:
    """One streamed piece of the reply: text, tool calls, or both."""

    id: str
    content: str | None = None
    tool_calls: tuple[ToolCallOut, ...] = ()
    role: Literal["assistant"] | None = "assistant"
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def of(cls, chunk: llm.ChatChunk) -> LlmChunkOut:
        delta = chunk.delta
        usage = chunk.usage
        return cls(
            id=chunk.id,
            content=delta.content if delta else None,
            tool_calls=tuple(ToolCallOut(t.name, t.arguments, t.call_id)
                             for t in (delta.tool_calls if delta else [])),
            role="assistant" if delta and delta.role == "assistant" else None,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def chunk(self) -> llm.ChatChunk:
        delta = None
        if self.content is not None or self.tool_calls or self.role:
            delta = llm.ChoiceDelta(
                role=self.role, content=self.content,
                tool_calls=[llm.FunctionToolCall(name=t.name, arguments=t.arguments,
                                                 call_id=t.call_id) for t in self.tool_calls])
        usage = None
        if self.prompt_tokens or self.completion_tokens:
            usage = llm.CompletionUsage(
                prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                total_tokens=self.prompt_tokens + self.completion_tokens)
        return llm.ChatChunk(id=self.id, delta=delta, usage=usage)


@dataclass(frozen=True, slots=True)
class AudioOut:
    """Synthesized audio, mono 16-bit PCM. ``final`` closes a segment."""

    pcm: bytes
    sample_rate: int
    final: bool = False
    segment_id: str = ""
    text: str = ""
    """The words this audio speaks, when the voice knows them (aligned transcript)."""

    def frame(self) -> rtc.AudioFrame:
        return frame_from_pcm(self.pcm, self.sample_rate)


StreamOutput = SpeechEventOut | LlmChunkOut | AudioOut


def tool_schemas(tools: list[llm.Tool]) -> list[dict[str, Any]]:
    """JSON schemas (``name``, ``description``, ``parameters``) of the function tools.

    Provider tools (a provider's built-in search, ...) have no portable schema and are refused
    with a clear error rather than silently dropped."""
    schemas: list[dict[str, Any]] = []
    for tool in tools:
        if llm.is_raw_function_tool(tool):
            schemas.append(dict(tool.info.raw_schema))
        elif llm.is_function_tool(tool):
            schema = llm.utils.build_legacy_openai_schema(tool, internally_tagged=True)
            schema.pop("type", None)
            schemas.append(schema)
        else:
            raise ValueError(f"tool {tool!r} cannot cross to a provider pool: only function "
                             "tools (@function_tool) have a portable schema")
    return schemas

