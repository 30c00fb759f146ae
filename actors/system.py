"""Start (or find) the system's long-lived actors: telemetry hub, store writer, breaker
registry, provider pools, the simulated callers' hosts, dispatcher.

Every actor is named in one namespace and created with ``get_if_exists``, so the CLI, the Serve
app builder and the tests can all call ``ensure_system`` and share one set. They are detached:
they outlive the driver that created them and go away with the cluster.

Start-up never waits for ever: an actor the cluster cannot place within STARTUP_TIMEOUT_S
fails it with one line naming the actor and the resource it waits for (``PlacementError``);
one that is placed but slow to answer (models loading on a busy machine) gets up to four
times as long.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.actor import ActorHandle

from actors.breaker_registry import ensure_breaker_registry
from actors.caller_actor import caller_host_name, start_caller_hosts
from actors.dispatcher import Dispatcher, call_actor_resources
from actors.names import DISPATCHER, TELEMETRY
from actors.pool_layout import PoolSpec, needs_breakers, pool_layout
from actors.provider_workers import WORKER_CLASSES
from actors.store_writer import HEAD_NODE_RESOURCE, ensure_store_writer
from actors.system_env import SYSTEM_RUNTIME_ENV
from actors.telemetry import TelemetryHub
from voice_ai.config import Settings
from voice_ai.errors import VoiceAIError

__all__ = ["PlacementError", "SystemHandles", "ensure_system", "ping_all", "start_pool",
           "teardown_system", "whisper_gpus"]

ANSWER_GRACE = 4  # a placed actor may take this many STARTUP_TIMEOUT_S to answer


class PlacementError(VoiceAIError):
    """A system actor could not be placed (or did not answer) at start-up. One line."""


@dataclass
class SystemHandles:
    telemetry: ActorHandle[Any]
    dispatcher: ActorHandle[Any]
    store_writer: ActorHandle[Any]
    breaker_registry: ActorHandle[Any] | None
    workers: dict[str, list[ActorHandle[Any]]]


@dataclass(frozen=True)
class _Waiting:
    name: str
    ref: Any  # the ObjectRef of a first call: ready once the actor is placed and answers
    resources: dict[str, float]  # what it asked Ray for


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
    gpus = ray.cluster_resources().get("GPU", 0)  # type: ignore[no-untyped-call]
    return 1.0 if gpus >= 1 else 0.0


def pool_cpus(settings: Settings, pool: PoolSpec) -> float:
    """A cloud provider's worker only waits on the network; a local model computes."""
    return settings.cloud_pool_actor_num_cpus if pool.is_cloud else settings.pool_actor_num_cpus


def start_pool(settings: Settings, pool: PoolSpec) -> list[ActorHandle[Any]]:
    cls = WORKER_CLASSES[pool.stage]
    gpus = whisper_gpus(settings) if pool.provider == "whisper" else 0.0
    return [
        _named(cls, name, settings.ray_namespace, num_cpus=pool_cpus(settings, pool),
               num_gpus=gpus, max_concurrency=32).remote(settings, pool.provider)
        for name in pool.names
    ]


def ensure_system(settings: Settings, *, warm: bool = True) -> SystemHandles:
    """Create what is missing, wait until every actor answers, fill the warm pool."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ns = settings.ray_namespace
    # the hub and the dispatcher hold the cluster's state: on the head, so that losing a
    # worker node loses only its calls (and a restart lands on the head again)
    head = {HEAD_NODE_RESOURCE: 0.001}
    telemetry = _named(TelemetryHub, TELEMETRY, ns, num_cpus=0, resources=head).remote(settings)
    store_writer = ensure_store_writer(settings, detached=True, namespace=ns)
    registry = (ensure_breaker_registry(settings, namespace=ns)
                if needs_breakers(settings) else None)
    waiting = [_Waiting(TELEMETRY, telemetry.start.remote(), dict(head)),
               _Waiting("store_writer", store_writer.pid.remote(), dict(head))]
    workers: dict[str, list[ActorHandle[Any]]] = {}
    for pools in pool_layout(settings).values():
        for pool in pools:
            workers[pool.label] = start_pool(settings, pool)
            gpus = whisper_gpus(settings) if pool.provider == "whisper" else 0.0
            asks = {"CPU": pool_cpus(settings, pool), **({"GPU": gpus} if gpus else {})}
            waiting += [_Waiting(name, w.info.remote(), asks)
                        for name, w in zip(pool.names, workers[pool.label], strict=True)]
    # simulated callers' hosts (the Piper pool is their voice): outside every call actor
    waiting += [_Waiting(caller_host_name(i), h.status.remote(), {})
                for i, h in enumerate(start_caller_hosts(settings))]
    wait_placed(waiting, settings.startup_timeout_s)
    dispatcher = _named(Dispatcher, DISPATCHER, ns, num_cpus=0, resources=head,
                        max_concurrency=1000, runtime_env=SYSTEM_RUNTIME_ENV).remote(settings)
    if warm:
        left = max(settings.startup_timeout_s * ANSWER_GRACE - (time.monotonic() - started),
                   settings.call_actor_prepare_timeout_s)
        ready = ray.get(dispatcher.fill_warm_pool.remote(), timeout=left)
        if ready < settings.warm_call_actors:
            asks = {"CPU": settings.call_actor_num_cpus,
                    "memory": settings.call_actor_memory_mb * 1024.0 * 1024.0,
                    **call_actor_resources(settings)}
            raise PlacementError(_diagnose("call actors", asks, ready_of=(
                ready, settings.warm_call_actors), timeout_s=settings.call_actor_prepare_timeout_s))
    return SystemHandles(telemetry=telemetry, dispatcher=dispatcher, store_writer=store_writer,
                         breaker_registry=registry, workers=workers)


def wait_placed(waiting: list[_Waiting], timeout_s: float) -> None:
    """Wait for every first call. At ``timeout_s``, an actor that still waits for resources
    fails start-up; the others get until ``ANSWER_GRACE * timeout_s`` to answer."""
    pending = {w.ref: w for w in waiting}
    deadline = time.monotonic() + timeout_s
    for phase_end, strict in ((deadline, True),
                              (deadline + (ANSWER_GRACE - 1) * timeout_s, False)):
        while pending:
            left = phase_end - time.monotonic()
            if left <= 0:
                break
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=left)
            for ref in ready:
                ray.get(ref)  # an actor whose constructor failed raises here
                del pending[ref]
        if not pending:
            return
        starving = [w for w in pending.values() if _missing(w.resources)]
        if strict and starving:
            first = starving[0]
            more = f" (and {len(starving) - 1} more actor(s) waiting)" if len(starving) > 1 else ""
            raise PlacementError(_diagnose(first.name, first.resources, timeout_s=timeout_s)
                                 + more)
    first = next(iter(pending.values()))
    raise PlacementError(f"start-up failed: {first.name} was placed but did not answer within "
                         f"{ANSWER_GRACE * timeout_s:.0f} s (see `ray logs` / the errors log)")


def _missing(asks: dict[str, float]) -> dict[str, float]:
    """The requested resources the cluster has not got free now."""
    free = ray.available_resources()  # type: ignore[no-untyped-call]
    return {k: v for k, v in asks.items() if v > 0 and free.get(k, 0.0) + 1e-9 < v}


def _diagnose(name: str, asks: dict[str, float], *, timeout_s: float,
              ready_of: tuple[int, int] | None = None) -> str:
    total = ray.cluster_resources()  # type: ignore[no-untyped-call]
    free = ray.available_resources()  # type: ignore[no-untyped-call]
    short = _missing(asks) or {k: v for k, v in asks.items() if v > 0}
    parts = []
    for res, want in short.items():
        unit = 1024.0 ** 3 if res == "memory" else 1.0
        shown = "memory GiB" if res == "memory" else res
        parts.append(f"{shown} {want / unit:g} (cluster {total.get(res, 0.0) / unit:g}, "
                     f"free {free.get(res, 0.0) / unit:g})")
    what = (f"{ready_of[0]} of {ready_of[1]} {name} ready" if ready_of
            else f"actor {name} not placed")
    return (f"start-up failed: {what} within {timeout_s:.0f} s; it waits for "
            f"{'; '.join(parts)}. Give Ray more CPUs or lower POOL_ACTOR_NUM_CPUS / "
            f"CLOUD_POOL_ACTOR_NUM_CPUS / CALL_ACTOR_NUM_CPUS")


def teardown_system(settings: Settings) -> None:
    """Kill every named actor of this system (its namespace); other systems are untouched."""
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == settings.ray_namespace:
            try:
                ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]),
                         no_restart=True)
            except ValueError:  # already gone
                pass


async def ping_all(handles: list[ActorHandle[Any]], timeout_s: float = 2.0) -> list[Any]:
    """``info()`` of each handle, or the exception it raised (health checks)."""

    async def one(h: ActorHandle[Any]) -> Any:
        try:
            return await asyncio.wait_for(h.info.remote(), timeout=timeout_s)
        except Exception as e:
            return e

    return list(await asyncio.gather(*(one(h) for h in handles)))
