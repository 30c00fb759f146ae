"""Scripted livekit providers for tests (like livekit-agents' own ``tests/fake_stt.py``).

They subclass the real base classes, so ``AgentSession``, the pool hosts and the stages drive
them exactly as they drive whisper, Deepgram, OpenAI, Cartesia or Piper:

- ``ScriptedSTT``: non-streaming (whisper-like), the next scripted text per utterance.
- ``LiveSTT``: streaming (Deepgram-like): START_OF_SPEECH at the first loud frame, interims
  while speech arrives, FINAL + END_OF_SPEECH after ``endpoint_s`` of quiet; can refuse to
  open, drop mid-stream or hang (accept audio, never answer).
- ``ScriptedLLM``: scripted replies token by token, tool calls, failures before or after the
  first token, optional delays; records every request.
- ``ToneTTS``: streaming text in, a tone per character out; can fail after some audio.
- ``EnergyVAD``: a VAD on frame loudness, so tests need no model and no real-time pacing.
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    vad,
)
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.voice.io import TimedString

from voice_ai.audio import rms

RATE = 16_000
FRAME_S = 0.02
LOUD = 500.0


def tone(seconds: float, rate: int = RATE, hz: float = 300.0, amp: int = 6000) -> bytes:
    n = int(seconds * rate)
    return array("h", (int(amp * math.sin(2 * math.pi * hz * i / rate)) for i in range(n))
                 ).tobytes()


def frames(pcm: bytes, rate: int = RATE) -> list[rtc.AudioFrame]:
    step = int(rate * FRAME_S) * 2
    return [rtc.AudioFrame(pcm[i:i + step], rate, 1, len(pcm[i:i + step]) // 2)
            for i in range(0, len(pcm) - step + 1, step)]


def utterance(speech_s: float = 0.6, silence_s: float = 0.6) -> list[rtc.AudioFrame]:
    return frames(tone(speech_s) + bytes(int(silence_s * RATE) * 2))


def _final(kind: stt.SpeechEventType, text: str) -> stt.SpeechEvent:
    return stt.SpeechEvent(type=kind, alternatives=[
        stt.SpeechData(language=LanguageCode("en"), text=text, confidence=1.0)])


# --- STT -----------------------------------------------------------------------------------
class ScriptedSTT(stt.STT[Any]):
    def __init__(self, texts: Sequence[str] = ("hello",), *, name: str = "whisper",
                 fail: Exception | None = None, delay_s: float = 0.0) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False,
                                                          interim_results=False))
        self.texts = list(texts)
        self.name = name
        self.fail = fail
        self.delay_s = delay_s
        self.heard_s: list[float] = []  # seconds of audio of each request

    @property
    def provider(self) -> str:
        return self.name

    async def _recognize_impl(self, buffer: utils.AudioBuffer, *,
                              language: NotGivenOr[str] = NOT_GIVEN,
                              conn_options: APIConnectOptions) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer) if isinstance(buffer, list) else buffer
        self.heard_s.append(frame.duration)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        text = self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]
        return _final(stt.SpeechEventType.FINAL_TRANSCRIPT, text)


class LiveSTT(stt.STT[Any]):
    """``mode``: "ok", "refuse" (fails at open with HTTP 500), "drop" (fails after
    ``drop_after`` frames), "hang" (never answers)."""

    def __init__(self, texts: Sequence[str] = ("hello there",), *, name: str = "deepgram",
                 endpoint_s: float = 0.3, mode: str = "ok", drop_after: int = 10) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=True))
        self.texts = list(texts)
        self.name = name
        self.endpoint_s = endpoint_s
        self.mode = mode
        self.drop_after = drop_after
        self.streams = 0
        self.finals: list[str] = []

    @property
    def provider(self) -> str:
        return self.name

    async def _recognize_impl(self, buffer: utils.AudioBuffer, *,
                              language: NotGivenOr[str] = NOT_GIVEN,
                              conn_options: APIConnectOptions) -> stt.SpeechEvent:
        raise NotImplementedError

    def next_text(self) -> str:
        return self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]

    def stream(self, *, language: NotGivenOr[str] = NOT_GIVEN,
               conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
               ) -> stt.RecognizeStream:
        self.streams += 1
        return _LiveStream(stt=self, conn_options=conn_options)


class _LiveStream(stt.RecognizeStream):
    _stt: LiveSTT

    async def _run(self) -> None:
        s = self._stt
        if s.mode == "refuse":
            raise APIStatusError("simulated 500", status_code=500, retryable=False)
        speaking, quiet_s, heard, text = False, 0.0, 0, ""
        async for item in self._input_ch:
            if not isinstance(item, rtc.AudioFrame):
                continue
            heard += 1
            if s.mode == "drop" and heard > s.drop_after:
                raise APIConnectionError("simulated drop", retryable=False)
            if s.mode == "hang":
                continue
            if rms(item.data.tobytes()) >= LOUD:
                quiet_s = 0.0
                if not speaking:
                    speaking, text = True, s.next_text()
                    self._event_ch.send_nowait(stt.SpeechEvent(
                        stt.SpeechEventType.START_OF_SPEECH))
                if heard % 5 == 0:
                    self._event_ch.send_nowait(_final(stt.SpeechEventType.INTERIM_TRANSCRIPT,
                                                      text))
            elif speaking:
                quiet_s += item.duration
                if quiet_s >= s.endpoint_s:
                    speaking = False
                    s.finals.append(text)
                    self._event_ch.send_nowait(_final(stt.SpeechEventType.FINAL_TRANSCRIPT,
                                                      text))
                    self._event_ch.send_nowait(stt.SpeechEvent(
                        stt.SpeechEventType.END_OF_SPEECH))


# --- VAD -----------------------------------------------------------------------------------
class EnergyVAD(vad.VAD):
    def __init__(self, *, min_silence_s: float = 0.3, min_speech_s: float = 0.04) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=FRAME_S))
        self.min_silence_s = min_silence_s
        self.min_speech_s = min_speech_s

    def stream(self) -> vad.VADStream:
        return _EnergyVADStream(self)


class _EnergyVADStream(vad.VADStream):
    _vad: EnergyVAD

    def __init__(self, model: EnergyVAD) -> None:
        super().__init__(model)
        self._model = model

    async def _main_task(self) -> None:
        m = self._model
        speaking, speech_s, silence_s = False, 0.0, 0.0
        buffered: list[rtc.AudioFrame] = []
        index = 0
        async for item in self._input_ch:
            if not isinstance(item, rtc.AudioFrame):
                continue
            index += item.samples_per_channel
            loud = rms(item.data.tobytes()) >= LOUD
            self._event_ch.send_nowait(vad.VADEvent(
                type=vad.VADEventType.INFERENCE_DONE, samples_index=index, timestamp=0.0,
                speech_duration=speech_s, silence_duration=silence_s, frames=[item],
                speaking=speaking, raw_accumulated_silence=silence_s,
                raw_accumulated_speech=speech_s, probability=1.0 if loud else 0.0))
            if loud:
                speech_s += item.duration
                silence_s = 0.0
                buffered.append(item)
                if not speaking and speech_s >= m.min_speech_s:
                    speaking = True
                    self._event_ch.send_nowait(vad.VADEvent(
                        type=vad.VADEventType.START_OF_SPEECH, samples_index=index,
                        timestamp=0.0, speech_duration=speech_s, silence_duration=0.0,
                        frames=list(buffered), speaking=True))
            else:
                silence_s += item.duration
                if speaking:
                    buffered.append(item)
                else:
                    speech_s = 0.0
                    buffered = []
                if speaking and silence_s >= m.min_silence_s:
                    speaking = False
                    self._event_ch.send_nowait(vad.VADEvent(
                        type=vad.VADEventType.END_OF_SPEECH, samples_index=index,
                        timestamp=0.0, speech_duration=speech_s, silence_duration=silence_s,
                        frames=list(buffered), speaking=False))
                    speech_s, buffered = 0.0, []


# --- LLM -----------------------------------------------------------------------------------
@dataclass
class ToolCallReply:
    name: str
    arguments: str
    call_id: str = "call_1"
    say: str = ""  # words spoken before the call ("Let me check."), as models often do


@dataclass
class ScriptedLLM(llm.LLM[Any]):
    """Replies in order (the last one repeats). A reply is text, or a ``ToolCallReply``."""

    replies: list[str | ToolCallReply] = field(default_factory=lambda: ["Sure, I can help."])
    name: str = "scripted"
    first_token_s: float = 0.0
    token_s: float = 0.0
    fail: Exception | None = None
    fail_after_tokens: int | None = None
    requests: list[llm.ChatContext] = field(default_factory=list)
    tools_seen: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def __hash__(self) -> int:
        return id(self)

    @property
    def provider(self) -> str:
        return self.name

    def chat(self, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool] | None = None,
             conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
             parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
             tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
             extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN) -> llm.LLMStream:
        self.requests.append(chat_ctx.copy())
        self.tools_seen.append(sorted(
            t.info.name for t in tools or []
            if llm.is_function_tool(t) or llm.is_raw_function_tool(t)))
        index = min(len(self.requests) - 1, len(self.replies) - 1)
        return _ScriptedStream(self, self.replies[index], chat_ctx=chat_ctx,
                               tools=list(tools or []), conn_options=conn_options)


class _ScriptedStream(llm.LLMStream):
    _llm: ScriptedLLM

    def __init__(self, owner: ScriptedLLM, reply: str | ToolCallReply, **kw: Any) -> None:
        super().__init__(owner, **kw)
        self._reply = reply

    async def _run(self) -> None:
        s = self._llm
        if s.first_token_s:
            await asyncio.sleep(s.first_token_s)
        if s.fail is not None and s.fail_after_tokens is None:
            raise s.fail
        rid = utils.shortuuid("fake_")
        if isinstance(self._reply, ToolCallReply):
            r = self._reply
            if r.say:
                self._event_ch.send_nowait(llm.ChatChunk(id=rid, delta=llm.ChoiceDelta(
                    role="assistant", content=r.say)))
            self._event_ch.send_nowait(llm.ChatChunk(id=rid, delta=llm.ChoiceDelta(
                role="assistant", tool_calls=[llm.FunctionToolCall(
                    name=r.name, arguments=r.arguments, call_id=r.call_id)])))
            return
        for i, word in enumerate(self._reply.split(" ")):
            if s.fail is not None and s.fail_after_tokens is not None \
                    and i >= s.fail_after_tokens:
                raise s.fail
            if i and s.token_s:
                await asyncio.sleep(s.token_s)
            self._event_ch.send_nowait(llm.ChatChunk(id=rid, delta=llm.ChoiceDelta(
                role="assistant", content=word + " ")))


# --- TTS -----------------------------------------------------------------------------------
class ToneTTS(tts.TTS[Any]):
    """20 ms of tone per character of each word, at ``rate``, with each word's aligned
    transcript (like Cartesia's word timestamps)."""

    def __init__(self, *, name: str = "tone", rate: int = 24_000, first_audio_s: float = 0.0,
                 fail: Exception | None = None, fail_after_words: int | None = None,
                 hz: float = 220.0, loudness: Callable[[str], int] | None = None) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=True), sample_rate=rate,
                         num_channels=1)
        self.name = name
        self.first_audio_s = first_audio_s
        self.fail = fail
        self.fail_after_words = fail_after_words
        self.hz = hz
        self.loudness = loudness  # amplitude per stream, from its first text: a fingerprint
        self.texts: list[str] = []  # text received, per stream

    @property
    def provider(self) -> str:
        return self.name

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
                   ) -> tts.ChunkedStream:
        return self._synthesize_with_stream(text, conn_options=conn_options)

    def stream(self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
               ) -> tts.SynthesizeStream:
        self.texts.append("")
        return _ToneStream(tts=self, conn_options=conn_options, index=len(self.texts) - 1)


class _ToneStream(tts.SynthesizeStream):
    _tts: ToneTTS

    def __init__(self, *, tts: ToneTTS, conn_options: APIConnectOptions, index: int) -> None:
        super().__init__(tts=tts, conn_options=conn_options)
        self._index = index

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        t = self._tts
        output_emitter.initialize(request_id=utils.shortuuid(), sample_rate=t.sample_rate,
                                  num_channels=1, mime_type="audio/pcm", stream=True,
                                  frame_size_ms=20)
        output_emitter.start_segment(segment_id=utils.shortuuid())
        words = 0
        first = True
        amp = 6000
        async for item in self._input_ch:
            if not isinstance(item, str) or not item.strip():
                continue
            t.texts[self._index] += item
            if first and t.first_audio_s:
                await asyncio.sleep(t.first_audio_s)
            if first and t.loudness is not None:
                amp = t.loudness(item)
            first = False
            if t.fail is not None and t.fail_after_words is None:
                raise t.fail
            self._mark_started()
            for word in item.split():
                if t.fail is not None and t.fail_after_words is not None \
                        and words >= t.fail_after_words:
                    raise t.fail
                output_emitter.push_timed_transcript(TimedString(text=word + " "))
                output_emitter.push(tone(0.02 * len(word), t.sample_rate, t.hz, amp))
                words += 1
                await asyncio.sleep(0)
        output_emitter.end_segment()
