"""Pooled provider actors: each hosts one livekit provider (``ProviderHost``) for any call.

The actor methods only delegate to the host. They are async and concurrent
(``max_concurrency``); the local models serialize what they cannot share. Ray restarts a
crashed worker (``max_restarts=-1``) under the same name. A cloud plugin needs an HTTP session
on the actor's event loop, so it is built on the first call (``info`` at start-up).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import psutil
import ray

from actors.worker_setup import forward_logs
from voice_ai.config import Settings
from voice_ai.providers.factory import build_provider, is_local
from voice_ai.providers.host import ProviderHost
from voice_ai.providers.local.whisper import WhisperSTT
from voice_ai.providers.wire import OpenMessage, StreamInput, StreamOutput


class _ProviderWorker:
    stage = ""

    def __init__(self, settings: Settings, provider: str) -> None:
        forward_logs(settings.ray_namespace)
        self._settings = settings
        self._provider = provider
        self._host: ProviderHost | None = None
        self._http: aiohttp.ClientSession | None = None
        if is_local(self.stage, provider):  # load the model now: the pool starts warm
            self._host = self._make_host(None)
        self._started = time.time()
        self._proc = psutil.Process(os.getpid())
        self._proc.cpu_percent()  # the first call primes the counter

    def _make_host(self, http: aiohttp.ClientSession | None) -> ProviderHost:
        provider = build_provider(self._settings, self.stage, self._provider, http_session=http)
        device = provider.engine.device if isinstance(provider, WhisperSTT) else None
        return ProviderHost(self.stage, self._provider, provider, device=device,
                            timeout_s=self._settings.provider_timeout_s)

    async def _ready(self) -> ProviderHost:
        if self._host is None:
            self._http = aiohttp.ClientSession()
            self._host = self._make_host(self._http)
        return self._host

    async def info(self) -> dict[str, Any]:
        """Readiness probe and the numbers the health and metrics endpoints show."""
        stats = (await self._ready()).stats()
        return {
            "stage": self.stage, "provider": self._provider,
            "in_flight": stats.in_flight, "served": stats.served,
            "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(),
            "rss_bytes": self._proc.memory_info().rss,
            "cpu_percent": self._proc.cpu_percent(),
            "uptime_s": time.time() - self._started,
            "sample_rate": stats.sample_rate or None,
            "device": stats.device,  # whisper: cuda or cpu, resolved
        }

    async def serve(self, stream_id: str, request: OpenMessage) -> AsyncIterator[StreamOutput]:
        host = await self._ready()
        async for out in host.serve(stream_id, request):
            yield out

    async def push(self, stream_id: str, items: Sequence[StreamInput]) -> None:
        (await self._ready()).push(stream_id, items)

    async def cancel(self, stream_id: str) -> None:
        if self._host is not None:
            self._host.cancel(stream_id)


@ray.remote(max_restarts=-1, max_task_retries=0)
class SttWorker(_ProviderWorker):
    stage = "stt"


@ray.remote(max_restarts=-1, max_task_retries=0)
class LlmWorker(_ProviderWorker):
    stage = "llm"


@ray.remote(max_restarts=-1, max_task_retries=0)
class TtsWorker(_ProviderWorker):
    stage = "tts"


WORKER_CLASSES = {"stt": SttWorker, "llm": LlmWorker, "tts": TtsWorker}
