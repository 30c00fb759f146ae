"""A small local LLM through llama.cpp (SmolLM2-135M-Instruct), as a streaming livekit LLM.

``LlamaEngine`` holds the model: one generation at a time, in a thread, tokens handed to the
event loop through a queue; a consumer that goes away (barge-in, a cancelled preemptive
generation) stops the generation at the next token. ``LlamaLLM`` is the livekit provider over
it. The model has no tool calling: tools offered to it are ignored (``docs/agent.md`` has the
receptionist's local answering engine, which does call tools).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, llm, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

__all__ = ["LlamaEngine", "LlamaLLM", "chat_messages"]

logger = logging.getLogger(__name__)
_DONE = object()
ChatMessage = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass
class LlamaEngine:
    model_path: Path
    max_tokens: int = 48
    threads: int = 2
    n_ctx: int = 2048
    name: str = "local"

    def __post_init__(self) -> None:
        from llama_cpp import Llama

        self._llm = Llama(
            model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.threads,
            verbose=False,
        )
        self._lock = asyncio.Lock()
        # the first generation pages the weights in and sets up buffers (seconds); pay it at
        # load time, not on a caller's first turn
        self._llm.create_chat_completion(
            messages=[{"role": "user", "content": "Hi"}], max_tokens=2)

    def _produce(self, messages: list[ChatMessage], loop: asyncio.AbstractEventLoop,
                 queue: asyncio.Queue[Any], stop: threading.Event) -> None:
        try:
            stream = self._llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]  # llama_cpp's TypedDicts
                max_tokens=self.max_tokens, stream=True, temperature=0.3,
            )
            for part in cast(Iterator[dict[str, Any]], stream):  # stream=True: chunk dicts
                if stop.is_set():
                    break
                delta = part["choices"][0].get("delta", {}).get("content")
                if delta:
                    loop.call_soon_threadsafe(queue.put_nowait, delta)
        except Exception as e:  # surfaced on the event loop side
            loop.call_soon_threadsafe(queue.put_nowait, e)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    async def generate(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """The reply as text deltas."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[Any] = asyncio.Queue()
            stop = threading.Event()
            worker = loop.run_in_executor(None, self._produce, messages, loop, queue, stop)
            try:
                while (item := await queue.get()) is not _DONE:
                    if isinstance(item, Exception):
                        raise item
                    yield item
            finally:
                stop.set()  # caller went away (barge-in): stop generating
                await worker


def chat_messages(chat_ctx: llm.ChatContext) -> list[ChatMessage]:
    """Plain role/content messages (text only): what a small local model understands."""
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


class LlamaLLM(llm.LLM[Any]):
    def __init__(self, engine: LlamaEngine) -> None:
        super().__init__()
        self.engine = engine

    @property
    def provider(self) -> str:
        return self.engine.name

    @property
    def model(self) -> str:
        return Path(self.engine.model_path).stem

    def chat(
        self, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        return _LlamaStream(self, chat_ctx=chat_ctx, tools=list(tools or []),
                            conn_options=conn_options)


class _LlamaStream(llm.LLMStream):
    _llm: LlamaLLM

    async def _run(self) -> None:
        request_id = utils.shortuuid("llama_")
        async for delta in self._llm.engine.generate(chat_messages(self._chat_ctx)):
            self._event_ch.send_nowait(llm.ChatChunk(
                id=request_id, delta=llm.ChoiceDelta(role="assistant", content=delta)))
