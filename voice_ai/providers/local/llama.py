"""A small local LLM through llama.cpp: SmolLM2-135M-Instruct, streamed token by token."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from voice_ai.providers.engines import ChatMessage

__all__ = ["LlamaEngine"]

logger = logging.getLogger(__name__)
_DONE = object()


@dataclass
class LlamaEngine:
    """Generation runs in a thread; tokens cross to the event loop through a queue."""

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
