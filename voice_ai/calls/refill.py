"""Warm-pool refill: when call actors are started for the pool, and when idle ones are replaced.

``WarmPool`` (``voice_ai.calls.warm_pool``) decides how many actors to start; ``PoolRefill``
starts them:

- one refill task at a time, kicked after every change (a call taken, ended or resumed, a
  node drained or undrained, a recovery); it runs while the pool asks for actors;
- a ``prepare()`` that fails or hangs past ``prepare_timeout_s`` retires that actor (nothing
  leaks); a round with a failure backs off (``refill_backoff_s``, doubling up to
  ``refill_backoff_max_s``) and after ``refill_attempts`` such rounds in a row the refill
  stops until the next kick;
- an actor that comes up on a node that began to drain meanwhile is retired;
- while calls run, the resume reserve goes preferably off the calls' node, or, with calls on
  several nodes, onto two nodes (``spread_from``), so losing one node leaves a warm actor;
- with ``spare_max_idle_s`` set, spares idle longer are retired and replaced (rotation), and
  with pack placement (``policy.pack_spares``) the replacements go preferably to the
  dispatcher's node and the nodes with calls (``pack_onto``), so idle spares never keep a
  node up that a burst brought up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from voice_ai.calls.deadline import within
from voice_ai.calls.dispatch_policy import DispatchPolicy
from voice_ai.calls.ports import CallActorFactory
from voice_ai.calls.warm_pool import ActorCounts, Spare, WarmPool, pack_onto, spread_from

__all__ = ["PoolRefill"]

logger = logging.getLogger("voice_ai.dispatcher")


class PoolRefill:
    """Starts call actors for ``pool`` in the background. ``busy``: calls are in progress;
    ``reserve``: idle actors to keep for resumes now; ``call_nodes``: where the live calls
    run (the reserve goes elsewhere where it can); ``draining``: nodes that take no new
    call actor; ``home``: the dispatcher's own node ("": unknown)."""

    def __init__(self, pool: WarmPool, factory: CallActorFactory, policy: DispatchPolicy,
                 counts: ActorCounts, *, busy: Callable[[], bool], reserve: Callable[[], int],
                 call_nodes: Callable[[], set[str]],
                 draining: Callable[[], frozenset[str]], wall_clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]], home: str = "") -> None:
        self._pool = pool
        self._factory = factory
        self._policy = policy
        self._counts = counts
        self._busy = busy
        self._reserve = reserve
        self._call_nodes = call_nodes
        self._draining = draining
        self._wall = wall_clock
        self._sleep = sleep
        self._home = home
        self._refill: asyncio.Task[None] | None = None
        self._rotation: asyncio.Task[None] | None = None

    async def fill(self) -> int:
        """Refill now and wait for it; return how many prepared actors are idle."""
        self.kick()
        if self._refill is not None:
            await asyncio.shield(self._refill)
        return self._pool.idle

    def kick(self) -> None:
        """Refill in the background unless a refill runs already (and start the rotation)."""
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._refill_loop())
        if self._policy.spare_max_idle_s > 0 and self._rotation is None:
            self._rotation = asyncio.create_task(self._rotate_spares())

    def tasks(self) -> list[asyncio.Task[None]]:
        """The background tasks (for the dispatcher's ``close`` to cancel)."""
        return [t for t in (self._refill, self._rotation) if t is not None]

    async def _rotate_spares(self) -> None:
        """Replace spares idle longer than ``spare_max_idle_s``. With CALL_ACTOR_PLACEMENT=pack
        their replacements go to the dispatcher's node or a node with calls where one has a
        slot (``pack_onto``), so idle spares never keep a node up that a burst brought up: the
        node empties and the autoscaler removes it."""
        max_idle = self._policy.spare_max_idle_s
        while True:
            await self._sleep(max_idle / 2)
            stale = self._pool.take_stale(self._wall() - max_idle)
            for spare in stale:
                logger.info("idle call actor replaced", extra={"actor": spare.actor.name})
                spare.actor.retire()
            if stale:
                self.kick()

    async def _refill_loop(self) -> None:
        backoff, failed_rounds = self._policy.refill_backoff_s, 0
        while (n := self._pool.to_start(busy=self._busy(), reserve=self._reserve())) > 0:
            ok = await asyncio.gather(*(self._start_spare() for _ in range(n)))
            if all(ok):
                backoff, failed_rounds = self._policy.refill_backoff_s, 0
                continue
            failed_rounds += 1
            if failed_rounds >= self._policy.refill_attempts:
                logger.error("warm pool refill gave up for now", extra={
                    "idle": self._pool.idle, "target": self._pool.target})
                return
            await self._sleep(backoff)
            backoff = min(2 * backoff, self._policy.refill_backoff_max_s)

    async def _start_spare(self) -> bool:
        self._pool.starting += 1
        pack, calls = self._policy.pack_spares, self._call_nodes()
        actor = self._factory.create(  # pack: where the calls and the system are, reserve too
            avoid_nodes=self._draining(),
            prefer_on=pack_onto(calls, self._home) if pack else frozenset(),
            prefer_off=frozenset() if pack else spread_from(self._pool.spares(), calls,
                                                            busy=self._busy()))
        self._counts.started += 1
        try:
            info = await within(actor.prepare(), self._policy.prepare_timeout_s,
                                f"prepare of {actor.name}")
        except Exception as e:  # never leak it: a half-started actor is stopped
            self._counts.prepare_failures += 1
            logger.error("call actor failed to prepare, stopped", extra={
                "actor": actor.name, "error": f"{type(e).__name__}: {e}"})
            actor.retire()
            return False
        finally:
            self._pool.starting -= 1
        if info.node_id in self._draining():  # started before its node began to drain
            actor.retire()
            return True
        self._pool.add(Spare(actor, info.node_id, info.calls_served, self._wall()))
        return True
