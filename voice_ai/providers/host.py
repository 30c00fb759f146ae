"""The worker side of a provider pool: one livekit provider serving streams for any call.

A pool worker (a Ray actor in ``actors/provider_workers.py``, or an in-memory worker in tests)
holds one ``ProviderHost``. ``serve(stream_id, open)`` runs one stream and yields its outputs;
``push(stream_id, inputs)`` delivers inputs to it (pushes may arrive before ``serve`` starts:
they wait in the stream's inbox); ``cancel(stream_id)`` stops it. Errors leave as
``ProviderError`` (``voice_ai.errors``), classified transient or permanent, so they pickle
across processes and the breakers on the call side count only transient ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, llm, stt, tts

from voice_ai.errors import ProviderError
from voice_ai.providers.wire import (
    AudioIn,
    AudioOut,
    EndInput,
    Flush,
    LlmChunkOut,
    LlmRequest,
    OpenMessage,
    SpeechEventOut,
    StreamInput,
    StreamOutput,
    SttOpen,
    SttRecognize,
    TextIn,
    TtsOpen,
)
from voice_ai.resilience.classify import to_provider_error

__all__ = ["HostStats", "ProviderHost"]

logger = logging.getLogger(__name__)
Provider = stt.STT[Any] | llm.LLM[Any] | tts.TTS[Any]
INBOX_TTL_S = 60.0  # an inbox whose stream never started (the caller died) is dropped after


@dataclass(frozen=True, slots=True)
class HostStats:
    stage: str
    provider: str
    in_flight: int
    served: int
    sample_rate: int
    device: str | None = None  # where a local model computes (whisper: "cuda" or "cpu")


class _Inbox:
    def __init__(self, created_at: float) -> None:
        self.queue: asyncio.Queue[StreamInput] = asyncio.Queue()
        self.created_at = created_at
        self.serving = False


class ProviderHost:
    """Serves streams of one provider. Retries are off (``max_retry=0``): the call's breakers
    and fallbacks decide what happens after a failure, not the provider plugin."""

    def __init__(self, stage: str, name: str, provider: Provider, *,
                 timeout_s: float = DEFAULT_API_CONNECT_OPTIONS.timeout,
                 device: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stage = stage
        self.name = name
        self.provider = provider
        self.device = device
        self._options = APIConnectOptions(max_retry=0, timeout=timeout_s)
        self._clock = clock
        self._inboxes: dict[str, _Inbox] = {}
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._in_flight = 0
        self._served = 0

    def stats(self) -> HostStats:
        rate = self.provider.sample_rate if isinstance(self.provider, tts.TTS) else 0
        return HostStats(self.stage, self.name, self._in_flight, self._served, rate,
                         self.device)

    # --- inputs ------------------------------------------------------------------------------
    def push(self, stream_id: str, items: Sequence[StreamInput]) -> None:
        inbox = self._inbox(stream_id)
        for item in items:
            inbox.queue.put_nowait(item)

    def cancel(self, stream_id: str) -> None:
        task = self._tasks.get(stream_id)
        if task is not None and not task.done():
            task.cancel()
        self._inboxes.pop(stream_id, None)

    def _inbox(self, stream_id: str) -> _Inbox:
        inbox = self._inboxes.get(stream_id)
        if inbox is None:
            now = self._clock()
            for sid, old in list(self._inboxes.items()):
                if not old.serving and now - old.created_at > INBOX_TTL_S:
                    del self._inboxes[sid]
            inbox = self._inboxes[stream_id] = _Inbox(now)
        return inbox

    # --- streams -----------------------------------------------------------------------------
    async def serve(self, stream_id: str, request: OpenMessage) -> AsyncIterator[StreamOutput]:
        inbox = self._inbox(stream_id)
        inbox.serving = True
        task = asyncio.current_task()
        if task is not None:
            self._tasks[stream_id] = task
        self._in_flight += 1
        try:
            async for out in self._outputs(request, inbox.queue):
                yield out
        except ProviderError:
            raise
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as e:
            raise to_provider_error(e, self.name) from e
        finally:
            self._in_flight -= 1
            self._served += 1
            self._tasks.pop(stream_id, None)
            self._inboxes.pop(stream_id, None)

    def _outputs(self, request: OpenMessage,
                 inbox: asyncio.Queue[StreamInput]) -> AsyncIterator[StreamOutput]:
        p = self.provider
        if isinstance(request, SttRecognize) and isinstance(p, stt.STT):
            return self._recognize(p, request)
        if isinstance(request, SttOpen) and isinstance(p, stt.STT):
            return self._recognize_stream(p, request, inbox)
        if isinstance(request, LlmRequest) and isinstance(p, llm.LLM):
            return self._chat(p, request)
        if isinstance(request, TtsOpen) and isinstance(p, tts.TTS):
            return self._synthesize(p, inbox)
        raise TypeError(f"{type(request).__name__} cannot open a stream on the "
                        f"{self.stage} pool of {self.name}")

    async def _recognize(self, p: stt.STT[Any], r: SttRecognize) -> AsyncIterator[StreamOutput]:
        ev = await p.recognize(r.audio.frame(), language=r.language, conn_options=self._options)
        yield SpeechEventOut.of(ev)

    async def _recognize_stream(self, p: stt.STT[Any], r: SttOpen,
                                inbox: asyncio.Queue[StreamInput]) -> AsyncIterator[StreamOutput]:
        stream = p.stream(language=r.language, conn_options=self._options)

        async def forward() -> None:
            while True:
                item = await inbox.get()
                if isinstance(item, AudioIn):
                    stream.push_frame(item.frame())
                elif isinstance(item, Flush):
                    stream.flush()
                elif isinstance(item, EndInput):
                    stream.end_input()
                    return

        async with stream:
            async for ev in _with_feeder(stream, forward()):
                yield SpeechEventOut.of(ev)

    async def _chat(self, p: llm.LLM[Any], r: LlmRequest) -> AsyncIterator[StreamOutput]:
        kwargs: dict[str, Any] = {}
        if r.tool_choice is not None:
            kwargs["tool_choice"] = r.tool_choice
        if r.parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = r.parallel_tool_calls
        async with p.chat(chat_ctx=r.context(), tools=r.stub_tools(),
                          conn_options=self._options, **kwargs) as stream:
            async for chunk in stream:
                yield LlmChunkOut.of(chunk)

    async def _synthesize(self, p: tts.TTS[Any],
                          inbox: asyncio.Queue[StreamInput]) -> AsyncIterator[StreamOutput]:
        stream = p.stream(conn_options=self._options)

        async def forward() -> None:
            while True:
                item = await inbox.get()
                if isinstance(item, TextIn):
                    stream.push_text(item.text)
                elif isinstance(item, Flush):
                    stream.flush()
                elif isinstance(item, EndInput):
                    stream.end_input()
                    return

        async with stream:
            async for ev in _with_feeder(stream, forward()):
                yield AudioOut(ev.frame.data.tobytes(), ev.frame.sample_rate, final=ev.is_final,
                               segment_id=ev.segment_id, text=ev.delta_text)


async def _with_feeder(events: AsyncIterator[Any], feeder: Any) -> AsyncIterator[Any]:
    """``events``, while ``feeder`` (a coroutine) fills the stream they come from."""
    task: asyncio.Task[None] = asyncio.create_task(feeder)
    try:
        async for ev in events:
            yield ev
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # checked just above
    finally:
        if not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
