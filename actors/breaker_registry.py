"""The cluster's one ``BreakerBoard``, in a named actor, and the client pool actors use.

Every request to a cloud provider asks this actor first (``BreakerGate.acquire``) and reports
its outcome after (``BreakerGate.report``). The admission is authoritative, not read from a
cache: the registry reserves the request's slot, so however many calls on however many nodes
race, no more requests reach a failing provider than the breaker needs to open (at most
``BREAKER_MIN_REQUESTS`` from a clean window). The price is one actor round trip (~1.5 ms) per
provider request. See ``docs/resilience.md``.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import ray
from ray.actor import ActorHandle

from voice_ai.config import Settings
from voice_ai.resilience import (
    Admission,
    BreakerBoard,
    BreakerConfig,
    breaker_config_from_settings,
    snapshot_to_dict,
)

__all__ = ["REGISTRY_NAME", "BreakerGate", "BreakerRegistry", "ensure_breaker_registry"]

REGISTRY_NAME = "breaker_registry"
THROTTLE_WAIT_S = 2.0


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3)
class BreakerRegistry:
    """Delegates to a ``BreakerBoard``; a restart starts every breaker closed."""

    def __init__(self, config: BreakerConfig) -> None:
        self._board = BreakerBoard(config)
        self._changed = asyncio.Event()

    async def acquire(self, provider: str, wait_s: float = THROTTLE_WAIT_S) -> str:
        """An ``Admission`` value. A throttled request waits up to ``wait_s`` for outcomes."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            admission = self._board.acquire(provider)
            remaining = deadline - asyncio.get_running_loop().time()
            if admission is not Admission.THROTTLED or remaining <= 0:
                return admission.value
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    async def report(
        self, provider: str, ok: bool, error: str | None = None, transient: bool = True
    ) -> None:
        self._board.report(provider, ok=ok, error=error, transient=transient)
        self._changed.set()  # wake throttled acquirers
        self._changed = asyncio.Event()

    async def snapshots(self) -> dict[str, dict[str, Any]]:
        return {name: snapshot_to_dict(s) for name, s in self._board.snapshots().items()}

    async def transitions_since(self, seq: int = 0) -> tuple[int, list[dict[str, Any]]]:
        current, transitions = self._board.transitions_since(seq)
        return current, [asdict(t) for t in transitions]


class BreakerGate:
    """What pool actors hold: ask before each provider request, report after it."""

    def __init__(self, registry: ActorHandle, *, throttle_wait_s: float = THROTTLE_WAIT_S):
        self._registry = registry
        self._throttle_wait_s = throttle_wait_s

    async def acquire(self, provider: str) -> bool:
        """True: send the request (and report its outcome); False: use the fallback."""
        admission = await self._registry.acquire.remote(provider, self._throttle_wait_s)
        return Admission(admission).allowed

    async def report(
        self, provider: str, ok: bool, error: str | None = None, transient: bool = True
    ) -> None:
        await self._registry.report.remote(provider, ok, error, transient)

    async def snapshots(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = await self._registry.snapshots.remote()
        return result

    async def transitions_since(self, seq: int = 0) -> tuple[int, list[dict[str, Any]]]:
        result: tuple[int, list[dict[str, Any]]] = await self._registry.transitions_since.remote(
            seq
        )
        return result


def ensure_breaker_registry(
    settings: Settings, *, name: str = REGISTRY_NAME, namespace: str | None = None
) -> ActorHandle:
    """The cluster's registry in the current namespace, created on first use.

    The first creator's settings win; ``name`` other than the default is for isolated tests.
    """
    return BreakerRegistry.options(  # type: ignore[attr-defined]  # ray.remote adds .options
        name=name, get_if_exists=True, lifetime="detached", namespace=namespace
    ).remote(breaker_config_from_settings(settings))
