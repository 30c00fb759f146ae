"""Component health of the running cluster, for ``/health`` (public: one word) and
``/health/detailed`` (internal face: every component).

Every read of Ray state is awaited with a deadline (``READ_TIMEOUT_S``) and blocking Ray APIs
(``ray.nodes``, ``ray.get_actor``) run in a thread, so a slow or restarting actor makes its
component unhealthy instead of stalling the event loop that serves the webhook. Results are
cached for ``CACHE_S``: a flood of ``/health`` requests costs one round of actor pings.

What the detail shows is for operators but still kept clean: an error is its exception type,
never a traceback, an exception message or a provider's response body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ray
from ray.actor import ActorHandle

from actors.names import BREAKER_REGISTRY, DISPATCHER
from actors.pool_layout import pool_layout
from voice_ai.calls.deadline import within
from voice_ai.config import Settings
from voice_ai.observability.scrub import Scrubber

__all__ = ["CACHE_S", "READ_TIMEOUT_S", "ClusterHealth", "overall_status"]

READ_TIMEOUT_S = 2.0
CACHE_S = 2.0
Components = dict[str, dict[str, Any]]
T = TypeVar("T")
_scrub = Scrubber()


def overall_status(components: Components) -> str:
    statuses = {c["status"] for c in components.values()}
    if "unhealthy" in statuses:
        return "unhealthy"
    return "degraded" if "degraded" in statuses else "healthy"


def _error_kind(error: BaseException | str) -> str:
    """``TimeoutError`` / ``RayActorError``: the kind of failure, nothing from its text."""
    if isinstance(error, BaseException):
        return type(error).__name__
    return _scrub(error.split(":", 1)[0].strip())[:80] or "error"


async def _within(awaitable: Awaitable[T], what: str, timeout_s: float = READ_TIMEOUT_S) -> T:
    return await within(awaitable, timeout_s, what)


class ClusterHealth:
    """Reads component health from the actors of one system (its namespace)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic,
                 cache_s: float = CACHE_S) -> None:
        self._settings = settings
        self._ns = settings.ray_namespace
        self._clock = clock
        self._cache_s = cache_s
        self._cached: tuple[float, Components] | None = None
        self._lock = asyncio.Lock()

    async def overall(self) -> str:
        return overall_status(await self.components())

    async def components(self) -> Components:
        async with self._lock:  # concurrent requests share one round of reads
            now = self._clock()
            if self._cached is None or now - self._cached[0] > self._cache_s:
                self._cached = (now, await self._read())
            return self._cached[1]

    async def _read(self) -> Components:
        names = ["ray", "call_pool", "breakers", *(f"{s}_pool" for s in pool_layout(
            self._settings))]
        reads = [self._ray(), self._call_pool(), self._breakers(),
                 *(self._stage(pools) for pools in pool_layout(self._settings).values())]
        return dict(zip(names, await asyncio.gather(*reads), strict=True))

    async def _actor(self, name: str) -> ActorHandle[Any] | None:
        try:
            return await _within(asyncio.to_thread(ray.get_actor, name, namespace=self._ns),
                                 f"lookup of {name}")
        except (ValueError, TimeoutError):
            return None

    async def _ray(self) -> dict[str, Any]:
        try:
            nodes = await _within(asyncio.to_thread(ray.nodes), "the Ray GCS")
        except Exception as e:
            return {"status": "unhealthy", "error": _error_kind(e)}
        alive = [n for n in nodes if n.get("Alive")]
        return {
            "status": "healthy" if alive else "unhealthy",
            "nodes_alive": len(alive),
            "nodes": [{"node_id": n["NodeID"][:12], "address": n["NodeManagerAddress"],
                       "resources": n.get("Resources", {})} for n in alive],
        }

    async def _call_pool(self) -> dict[str, Any]:
        dispatcher = await self._actor(DISPATCHER)
        if dispatcher is None:
            return {"status": "unhealthy", "error": "actor not found"}
        try:
            status: dict[str, Any] = await _within(dispatcher.status.remote(), "the dispatcher")
        except Exception as e:
            return {"status": "unhealthy", "error": _error_kind(e)}
        return {"status": "healthy", **status}

    async def _stage(self, pools: list[Any]) -> dict[str, Any]:
        primary = await self._pool(pools[0].names)
        primary["provider"] = pools[0].provider
        if len(pools) > 1:  # a cloud provider with the local model behind it
            fallback = await self._pool(pools[1].names)
            fallback["provider"] = pools[1].provider
            primary["fallback"] = fallback
            if primary["status"] == "unhealthy" and fallback["status"] != "unhealthy":
                primary["status"] = "degraded"
        return primary

    async def _pool(self, names: list[str]) -> dict[str, Any]:
        async def info(name: str) -> dict[str, Any]:
            handle = await self._actor(name)
            if handle is None:
                return {"error": "actor not found"}
            try:
                result: dict[str, Any] = await _within(handle.info.remote(), name)
            except Exception as e:
                return {"error": _error_kind(e)}
            return result

        workers = list(await asyncio.gather(*(info(n) for n in names)))
        live = sum(1 for w in workers if "error" not in w)
        return {
            "status": "healthy" if live == len(names) else "degraded" if live else "unhealthy",
            "workers_live": live,
            "workers_configured": len(names),
            "queue_length": sum(int(w.get("in_flight", 0)) for w in workers),
            "workers": workers,
        }

    async def _breakers(self) -> dict[str, Any]:
        """Breaker per cloud provider: open is degraded (fallbacks serve), a permanent error
        (401, 403, 400) needs a person."""
        registry = await self._actor(BREAKER_REGISTRY)
        if registry is None:
            return {"status": "healthy", "detail": "no cloud provider configured"}
        try:
            snapshots: dict[str, dict[str, Any]] = await _within(
                registry.snapshots.remote(), "the breaker registry")
        except Exception as e:
            return {"status": "unhealthy", "error": _error_kind(e)}
        providers = {name: _clean_snapshot(s) for name, s in snapshots.items()}
        attention = sorted(p for p, s in providers.items() if s.get("needs_attention"))
        degraded = attention or any(s.get("state") != "closed" for s in providers.values())
        return {"status": "degraded" if degraded else "healthy", "needs_attention": attention,
                "providers": providers}


def _clean_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A breaker snapshot without the provider's error text (it can hold a response body)."""
    clean = dict(snapshot)
    if clean.get("last_error"):
        clean["last_error"] = _error_kind(str(clean["last_error"]))
    return clean
