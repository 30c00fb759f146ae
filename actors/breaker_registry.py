"""The cluster's one breaker board (breakers + per-account quotas) in a named actor, and the
``ProviderBoard`` port over it that calls use.

Every cloud request, and every turn of a live stream, asks this actor first (``acquire``) and
reports its outcome after (``report``). The admission is authoritative, not read from a cache:
the registry reserves the request's slot, so however many calls on however many nodes race,
no more requests reach a failing provider than the breaker needs to open (at most
``BREAKER_MIN_REQUESTS`` from a clean window). The price is one actor round trip (~1.5 ms) per
request or turn. The policy is ``voice_ai.resilience.gate.BoardService``; see
``docs/resilience.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from typing import Any

import ray
from ray.actor import ActorHandle

from voice_ai.config import Settings
from voice_ai.resilience import Admission, snapshot_to_dict
from voice_ai.resilience.gate import Outcome, board_from_settings

__all__ = ["REGISTRY_NAME", "BreakerRegistry", "RayBoard", "ensure_breaker_registry"]

REGISTRY_NAME = "breaker_registry"
_GIVING_BACK: set[asyncio.Task[None]] = set()


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3)
class BreakerRegistry:
    """Delegates to a ``BoardService``; a restart starts every breaker closed until the
    telemetry hub re-seeds it (``restore_states``)."""

    def __init__(self, settings: Settings) -> None:
        self._board = board_from_settings(settings)

    async def acquire(self, provider: str, lease: str) -> Admission:
        return await self._board.acquire(provider, lease)

    async def report(self, provider: str, outcome: Outcome | None) -> None:
        await self._board.report(provider, outcome)

    async def release(self, provider: str, lease: str) -> None:
        await self._board.release(provider, lease)

    def snapshots(self) -> dict[str, dict[str, Any]]:
        return {name: snapshot_to_dict(s) for name, s in self._board.snapshots().items()}

    def transitions_since(self, seq: int = 0) -> tuple[int, list[dict[str, Any]]]:
        current, transitions = self._board.transitions_since(seq)
        return current, [asdict(t) for t in transitions]

    def restore_states(self, states: dict[str, str]) -> list[str]:
        return self._board.breakers.restore_states(states)


class RayBoard:
    """``ProviderBoard`` over the registry actor: what calls and pool workers hold."""

    def __init__(self, registry: ActorHandle[Any]) -> None:
        self._registry = registry

    async def acquire(self, provider: str, lease: str) -> Admission:
        answer: Any = self._registry.acquire.remote(provider, lease)
        try:
            admission: Admission = await answer
        except asyncio.CancelledError:
            # The registry answers all the same. A slot granted to nobody would hold back
            # every other call until its lease ran out: the half-open probe (recovery waits
            # ``lease_s``), a quota slot (a call's length). Give it back when it comes.
            task = asyncio.get_running_loop().create_task(
                self._give_back(answer, provider, lease))
            _GIVING_BACK.add(task)
            task.add_done_callback(_GIVING_BACK.discard)
            raise
        return admission

    async def _give_back(self, answer: Any, provider: str, lease: str) -> None:
        with contextlib.suppress(Exception):  # the registry restarting: its table is new
            if (await answer).allowed:
                await self._registry.report.remote(provider, None)
                await self._registry.release.remote(provider, lease)

    async def report(self, provider: str, outcome: Outcome | None) -> None:
        await self._registry.report.remote(provider, outcome)

    async def release(self, provider: str, lease: str) -> None:
        await self._registry.release.remote(provider, lease)


def ensure_breaker_registry(
    settings: Settings, *, name: str = REGISTRY_NAME, namespace: str | None = None
) -> ActorHandle[Any]:
    """The cluster's registry in the current namespace, created on first use.

    The first creator's settings win; ``name`` other than the default is for isolated tests.
    """
    handle: ActorHandle[Any] = BreakerRegistry.options(  # type: ignore[attr-defined]
        name=name, get_if_exists=True, lifetime="detached", namespace=namespace  # ray adds it
    ).remote(settings)
    return handle
