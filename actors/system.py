"""Start (or find) the system's long-lived actors: telemetry hub, provider pools, dispatcher.

Every actor is named in one namespace and created with ``get_if_exists``, so the CLI, the Serve
app builder and the tests can all call ``ensure_system`` and share one set. They are detached:
they outlive the driver that created them and go away with the cluster.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import ray
from ray.actor import ActorHandle

from actors.dispatcher import Dispatcher
from actors.names import DISPATCHER, NAMESPACE, TELEMETRY, worker_name
from actors.provider_workers import WORKER_CLASSES
from actors.telemetry import TelemetryHub
from voice_ai.config import Settings


@dataclass
class SystemHandles:
    telemetry: ActorHandle
    dispatcher: ActorHandle
    workers: dict[str, list[ActorHandle]]


def pool_layout(settings: Settings) -> dict[str, tuple[str, int]]:
    """stage -> (provider, size) for the configured primary providers."""
    return {
        "stt": (settings.stt_provider, settings.stt_pool_size),
        "llm": (settings.llm_provider, settings.llm_pool_size),
        "tts": (settings.tts_provider, settings.tts_pool_size),
    }


def _named(cls: Any, name: str, **options: Any) -> ActorHandle:
    handle: ActorHandle = cls.options(
        name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, **options
    )
    return handle


def start_pools(settings: Settings) -> dict[str, list[ActorHandle]]:
    workers: dict[str, list[ActorHandle]] = {}
    for stage, (provider, size) in pool_layout(settings).items():
        cls = WORKER_CLASSES[stage]
        workers[stage] = [
            _named(cls, worker_name(stage, provider, i),
                   num_cpus=settings.pool_actor_num_cpus, max_concurrency=32
                   ).remote(settings, provider)
            for i in range(size)
        ]
    return workers


def ensure_system(settings: Settings, *, warm: bool = True) -> SystemHandles:
    """Create what is missing, wait until every pool worker answers, fill the warm pool."""
    telemetry = _named(TelemetryHub, TELEMETRY, num_cpus=0).remote(settings)
    workers = start_pools(settings)
    ray.get(telemetry.start.remote())
    ray.get([w.info.remote() for ws in workers.values() for w in ws])
    dispatcher = _named(Dispatcher, DISPATCHER, num_cpus=0, max_concurrency=1000).remote(settings)
    if warm:
        ray.get(dispatcher.fill_warm_pool.remote())
    return SystemHandles(telemetry=telemetry, dispatcher=dispatcher, workers=workers)


async def ping_all(handles: list[ActorHandle], timeout_s: float = 2.0) -> list[Any]:
    """``info()`` of each handle, or the exception it raised (health checks)."""

    async def one(h: ActorHandle) -> Any:
        try:
            return await asyncio.wait_for(h.info.remote(), timeout=timeout_s)
        except Exception as e:
            return e

    return list(await asyncio.gather(*(one(h) for h in handles)))
