"""Pooled provider actors: each loads one engine once and serves any call.

The actor methods only delegate to the engine (``voice_ai.providers``). They are async and
concurrent (``max_concurrency``); the engines serialize what their model cannot share. Ray
restarts a crashed worker (``max_restarts=-1``) under the same name.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil
import ray

from actors.worker_setup import forward_logs
from voice_ai.config import Settings
from voice_ai.providers.engines import ChatMessage
from voice_ai.providers.factory import build_llm_engine, build_stt_engine, build_tts_engine


class _WorkerBase:
    stage = ""

    def __init__(self, settings: Settings, provider: str) -> None:
        forward_logs(settings.ray_namespace)
        self._provider = provider
        self._in_flight = 0
        self._served = 0
        self._started = time.time()
        self._proc = psutil.Process(os.getpid())
        self._proc.cpu_percent()  # first call primes the counter

    def info(self) -> dict[str, Any]:
        """Readiness probe and the numbers the health and metrics endpoints show."""
        mem = self._proc.memory_info()
        return {
            "stage": self.stage,
            "provider": self._provider,
            "in_flight": self._in_flight,
            "served": self._served,
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "rss_bytes": mem.rss,
            "cpu_percent": self._proc.cpu_percent(),
            "uptime_s": time.time() - self._started,
            "sample_rate": getattr(self._engine, "sample_rate", None),
            "device": getattr(self._engine, "device", None),  # whisper: cuda or cpu, resolved
        }

    def _begin(self) -> None:
        self._in_flight += 1

    def _end(self) -> None:
        self._in_flight -= 1
        self._served += 1


@ray.remote(max_restarts=-1, max_task_retries=0)
class SttWorker(_WorkerBase):
    stage = "stt"

    def __init__(self, settings: Settings, provider: str) -> None:
        super().__init__(settings, provider)
        self._engine = build_stt_engine(settings, provider)

    async def transcribe(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        self._begin()
        try:
            return await self._engine.transcribe(pcm16, sample_rate, language)
        finally:
            self._end()


@ray.remote(max_restarts=-1, max_task_retries=0)
class LlmWorker(_WorkerBase):
    stage = "llm"

    def __init__(self, settings: Settings, provider: str) -> None:
        super().__init__(settings, provider)
        self._engine = build_llm_engine(settings, provider)

    async def generate(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        self._begin()
        try:
            async for delta in self._engine.generate(messages):
                yield delta
        finally:
            self._end()


@ray.remote(max_restarts=-1, max_task_retries=0)
class TtsWorker(_WorkerBase):
    stage = "tts"

    def __init__(self, settings: Settings, provider: str) -> None:
        super().__init__(settings, provider)
        self._engine = build_tts_engine(settings, provider)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self._begin()
        try:
            async for chunk in self._engine.synthesize(text):
                yield chunk
        finally:
            self._end()


WORKER_CLASSES = {"stt": SttWorker, "llm": LlmWorker, "tts": TtsWorker}
