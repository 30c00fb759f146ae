"""Start (or find) the system's long-lived actors: telemetry hub, store writer, breaker
registry, provider pools, dispatcher.

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

from actors.breaker_registry import ensure_breaker_registry
from actors.dispatcher import Dispatcher
from actors.names import DISPATCHER, TELEMETRY
from actors.pool_layout import PoolSpec, needs_breakers, pool_layout
from actors.provider_workers import WORKER_CLASSES
from actors.store_writer import HEAD_NODE_RESOURCE, ensure_store_writer
from actors.telemetry import TelemetryHub
from voice_ai.config import Settings


@dataclass
class SystemHandles:
    telemetry: ActorHandle
    dispatcher: ActorHandle
    store_writer: ActorHandle
    breaker_registry: ActorHandle | None
    workers: dict[str, list[ActorHandle]]


def _named(cls: Any, name: str, namespace: str, **options: Any) -> Any:
    return cls.options(name=name, namespace=namespace, lifetime="detached",
                       get_if_exists=True, **options)


def whisper_gpus(settings: Settings) -> float:
    """GPUs one whisper worker asks for: 1 where the cluster has GPUs (WHISPER_DEVICE auto or
    cuda), 0 otherwise; the worker then runs on CPU with int8."""
    if settings.whisper_device == "cpu":
        return 0.0
    if settings.whisper_device == "cuda":
        return 1.0
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def start_pool(settings: Settings, pool: PoolSpec) -> list[ActorHandle]:
    cls = WORKER_CLASSES[pool.stage]
    gpus = whisper_gpus(settings) if pool.provider == "whisper" else 0.0
    return [
        _named(cls, name, settings.ray_namespace, num_cpus=settings.pool_actor_num_cpus,
               num_gpus=gpus, max_concurrency=32).remote(settings, pool.provider)
        for name in pool.names
    ]


def ensure_system(settings: Settings, *, warm: bool = True) -> SystemHandles:
    """Create what is missing, wait until every pool worker answers, fill the warm pool."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ns = settings.ray_namespace
    # the hub and the dispatcher hold the cluster's state: on the head, so that losing a
    # worker node loses only its calls (and a restart lands on the head again)
    head = {HEAD_NODE_RESOURCE: 0.001}
    telemetry = _named(TelemetryHub, TELEMETRY, ns, num_cpus=0, resources=head).remote(settings)
    store_writer = ensure_store_writer(settings, detached=True, namespace=ns)
    registry = (ensure_breaker_registry(settings, namespace=ns)
                if needs_breakers(settings) else None)
    workers = {
        pool.label: start_pool(settings, pool)
        for pools in pool_layout(settings).values() for pool in pools
    }
    ray.get(telemetry.start.remote())
    ray.get(store_writer.pid.remote())
    ray.get([w.info.remote() for ws in workers.values() for w in ws])
    dispatcher = _named(Dispatcher, DISPATCHER, ns, num_cpus=0, resources=head,
                        max_concurrency=1000).remote(settings)
    if warm:
        ray.get(dispatcher.fill_warm_pool.remote())
    return SystemHandles(telemetry=telemetry, dispatcher=dispatcher, store_writer=store_writer,
                         breaker_registry=registry, workers=workers)


def teardown_system(settings: Settings) -> None:
    """Kill every named actor of this system (its namespace); other systems are untouched."""
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == settings.ray_namespace:
            try:
                ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]),
                         no_restart=True)
            except ValueError:  # already gone
                pass


async def ping_all(handles: list[ActorHandle], timeout_s: float = 2.0) -> list[Any]:
    """``info()`` of each handle, or the exception it raised (health checks)."""

    async def one(h: ActorHandle) -> Any:
        try:
            return await asyncio.wait_for(h.info.remote(), timeout=timeout_s)
        except Exception as e:
            return e

    return list(await asyncio.gather(*(one(h) for h in handles)))
