"""Beginning an admitted call on its call actor: the first step of the call's supervision.

``CallStarter.begin`` journals the admission (so a restarted dispatcher can tell a lost call
from one that never was) while the call's actor is handed its ticket: a warm actor is asked to
``begin``; a cold one was created with its ticket and begins by itself; a browser call's SDP
offer is answered first. A warm actor that died while idle (its node lost and not yet noticed:
its spare stayed in the pool) fails at once, before the call began, and another takes the call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container
from dataclasses import replace

from voice_ai.calls.carry_on import LiveCall
from voice_ai.calls.deadline import within
from voice_ai.calls.dispatch_policy import DispatchPolicy
from voice_ai.calls.ports import (
    AdmissionJournal,
    CallActorFactory,
    CallActorLost,
    CallActorPort,
    CallTicket,
)
from voice_ai.calls.warm_pool import ActorCounts, Spare, WarmPool

__all__ = ["BEGIN_ATTEMPTS", "CallStarter"]

logger = logging.getLogger("voice_ai.dispatcher")
BEGIN_ATTEMPTS = 3
"""Warm actors tried for a call when the one it was given is found dead."""


class CallStarter:
    """Begins calls on their actors. ``cancelled``: calls that never connected (not moved to
    another actor); ``draining``: the nodes that take no new call actor; ``kick_refill`` after
    an actor is taken from ``pool``."""

    def __init__(self, pool: WarmPool, factory: CallActorFactory, journal: AdmissionJournal,
                 policy: DispatchPolicy, counts: ActorCounts, *, cancelled: Container[str],
                 draining: Callable[[], frozenset[str]],
                 kick_refill: Callable[[], None]) -> None:
        self._pool = pool
        self._factory = factory
        self._journal = journal
        self._policy = policy
        self._counts = counts
        self._cancelled = cancelled
        self._draining = draining
        self._kick_refill = kick_refill

    async def begin(self, call: LiveCall) -> None:
        """The call begun on ``call.spare``'s actor (which may be replaced on the way), its
        admission journaled. A journal that fails only logs: the call goes on."""
        ticket, actor = call.ticket, call.spare.actor
        journal = asyncio.ensure_future(within(
            self._journal.admitted(ticket, ticket.spec.admitted_at),
            self._policy.journal_timeout_s, "admission journal"))
        try:
            if ticket.spec.warm or call.offer is not None:  # else created with its ticket
                await self._begin_on_live_actor(call, actor)
        finally:
            try:
                await journal
            except Exception as e:  # recovery is weaker without it; the call goes on
                logger.warning("admission not journaled", extra={
                    "call_id": ticket.call_id, "error": f"{type(e).__name__}: {e}"})

    async def _begin_on_live_actor(self, call: LiveCall, actor: CallActorPort) -> None:
        """Begin the call on its warm actor; one found dead is replaced by another warm actor
        off its node, or by one started now (which begins the call by itself). A browser
        call's offer was answered by the dead one: it fails."""
        for _ in range(BEGIN_ATTEMPTS):
            try:
                await self._hand_over(call, actor)
                return
            except CallActorLost:
                if call.offer is not None or call.ticket.call_id in self._cancelled:
                    raise
                dead = call.spare
                logger.warning("warm call actor gone before the call began; another takes it",
                               extra={"call_id": call.ticket.call_id, "actor": actor.name,
                                      "node": dead.node_id[:12]})
                actor.retire()
                self._counts.lost += 1
                if call.reusable:
                    self._pool.call_finished(dead, reusable=True, completed=False)
                spare = self._pool.take(avoid=self._draining() | {dead.node_id})
                if spare is None:  # cold: created with its ticket, it begins the call itself
                    call.ticket = CallTicket(replace(call.ticket.spec, warm=False),
                                             call.ticket.key)
                    spare = Spare(self._factory.create(call.ticket, avoid_nodes=self._draining(),
                                                       prefer_off=frozenset({dead.node_id})), "")
                    self._counts.started += 1
                call.spare, actor = spare, spare.actor
                call.reusable = self._pool.call_started(spare)
                self._kick_refill()
                if not call.ticket.spec.warm:
                    return
        raise CallActorLost(f"no live call actor took the call in {BEGIN_ATTEMPTS} tries")

    async def _hand_over(self, call: LiveCall, actor: CallActorPort) -> None:
        ticket = call.ticket
        timeout = self._policy.begin_timeout_s
        if not ticket.spec.warm:  # a cold actor starts and prepares first
            timeout += self._policy.prepare_timeout_s
        if call.offer is not None:
            try:
                answer = await within(actor.answer_offer(ticket), timeout,
                                      f"offer answer on {actor.name}")
            except BaseException as e:
                call.offer.set_exception(e)
                raise
            call.offer.set_result(answer)
        await within(actor.begin(ticket), timeout, f"begin on {actor.name}")
