"""Carrying a call on: when a live call moves to another call actor, and how.

``CallCarrier`` follows each call to its end under the call deadline (``follow``). When the
call's actor is lost (``CallActorLost``) or hands the call over at a turn boundary (its node
drains), it carries the call on in another actor from the last checkpoint: a warm one off the
draining nodes (and off the lost node if there is one), else one started now, listening again
within the resume deadline, or the call fails with ``ResumeFailed``. Whether a call may be
carried on, and the checkpoint it resumes from, are the ``Resumption``'s
(``voice_ai.calls.resume``); this module only orchestrates.

Draining a node (``drain_node``): its idle actors retire, and each of its calls that may be
carried on first gets an actor ready off the draining nodes, which joins the caller's line
ahead (``stand_by``: make before break), then is asked to hand over, so the caller's gap is a
warm actor taking over a line it already hears, never a cold start, and nothing the caller says
meanwhile is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from voice_ai.calls.deadline import DeadlineExceeded, within
from voice_ai.calls.dispatch_policy import DispatchPolicy
from voice_ai.calls.ports import (
    ActorInfo,
    CallActorFactory,
    CallActorLost,
    CallEnd,
    CallTicket,
    Durability,
)
from voice_ai.calls.resume import ResumeEvent, ResumeFailed, Resumption
from voice_ai.calls.warm_pool import ActorCounts, Spare, WarmPool
from voice_ai.pipeline.checkpoint import ResumeCause
from voice_ai.records import CallRecord
from voice_ai.webrtc.signalling import SdpAnswer

__all__ = ["CallCarrier", "DrainReport", "LiveCall"]

logger = logging.getLogger("voice_ai.dispatcher")


@dataclass(frozen=True, slots=True)
class DrainReport:
    """``drain_node``: what was on the node, and what is still there."""

    node_id: str
    spares_retired: int  # idle call actors of the node, stopped
    handing_over: tuple[str, ...]  # calls to hand over at their next turn boundary, each as
    # soon as a call actor off the draining nodes is ready for it
    calls_left: tuple[str, ...]  # calls still running on the node


@dataclass
class LiveCall:
    """An admitted call and the call actor that carries it now."""

    ticket: CallTicket
    spare: Spare
    reusable: bool
    done: asyncio.Future[CallRecord] = field(repr=False)
    offer: asyncio.Future[SdpAnswer] | None = field(default=None, repr=False)  # browser calls


class CallCarrier:
    """Follows live calls and carries them on. ``calls``: the dispatcher's live calls (read);
    ``cancelled``: calls that never connected (not carried on); ``kick_refill`` after an actor
    is taken from ``pool``; ``spawn`` runs a drain's task under the dispatcher."""

    def __init__(self, calls: Mapping[str, LiveCall], pool: WarmPool, factory: CallActorFactory,
                 policy: DispatchPolicy, counts: ActorCounts, resumption: Resumption | None, *,
                 cancelled: Container[str], kick_refill: Callable[[], None],
                 spawn: Callable[[Coroutine[Any, Any, None]], None],
                 wall_clock: Callable[[], float]) -> None:
        self._calls = calls
        self._pool = pool
        self._factory = factory
        self._policy = policy
        self._counts = counts
        self._resumption = resumption
        self._cancelled = cancelled
        self._kick_refill = kick_refill
        self._spawn = spawn
        self._wall = wall_clock
        self._draining_calls: set[str] = set()  # calls a drain is moving (``_drain_call``)
        self._drain_spares: dict[str, Spare] = {}  # call id -> the actor ready to carry it on

    def draining(self) -> frozenset[str]:
        """Nodes that take no new call actor."""
        return self._resumption.draining if self._resumption is not None else frozenset()

    # --- following a call ---------------------------------------------------------------------
    async def follow(self, call: LiveCall) -> CallEnd:
        """The call's end, under the call deadline; each time its actor is lost or hands it
        over (a drain) the call is carried on by another (``_resume``) when it may be."""
        ticket = call.ticket
        while True:
            actor = call.spare.actor
            elapsed = max(0.0, self._wall() - ticket.spec.admitted_at)
            try:
                end = await within(actor.wait_end(ticket.call_id),
                                   max(self._policy.call_deadline_s - elapsed, 0.001),
                                   f"call {ticket.call_id} on {actor.name}")
            except CallActorLost:
                lost_at = self._wall()
                res = self._resumption
                if (res is None or not res.policy.enabled
                        or ticket.call_id in self._cancelled):
                    raise
                await self._resume(call, ResumeCause.ACTOR_LOST, lost_at)
                continue
            if end.durability is not Durability.HANDED_OVER:
                return end
            if self._resumption is None:
                raise ResumeFailed("handed over with no resume policy")
            handed_at = self._wall()
            await self._note_final_checkpoint(call)
            await self._resume(call, ResumeCause.DRAIN, handed_at)

    def call_ended(self, call_id: str) -> None:
        """The call ended: a drain stops moving it, and an actor readied for it is a spare."""
        self._draining_calls.discard(call_id)
        unused = self._drain_spares.pop(call_id, None)
        if unused is not None:  # the call ended before it handed over: the actor is a spare
            self._pool.add(unused)

    async def _note_final_checkpoint(self, call: LiveCall) -> None:
        """The checkpoint a call actor made as it handed its call over: the actor keeps it
        (``info``); its own push to the dispatcher may still be on its way."""
        assert self._resumption is not None
        try:
            info = await within(call.spare.actor.info(), self._policy.reply_timeout_s,
                                f"info of {call.spare.actor.name}")
        except Exception:  # gone meanwhile: the checkpoint held is the latest there is
            return
        if info.checkpoint is not None:
            self._resumption.note(info.checkpoint)

    async def _resume(self, call: LiveCall, cause: ResumeCause, lost_at: float) -> None:
        """Carry the call on in another call actor from its last checkpoint, listening again
        within the resume deadline, or raise ``ResumeFailed`` saying why."""
        res = self._resumption
        assert res is not None
        old, call_id = call.spare, call.ticket.call_id
        why = res.refusal(call.ticket.spec)
        if why is not None:
            raise ResumeFailed(why)
        order = res.order(call_id, cause, lost_at, old.node_id)
        ticket = CallTicket(replace(call.ticket.spec, resume=order), call.ticket.key)
        limit = f"RESUME_DEADLINE_S={res.policy.deadline_s:g}"
        ready = self._drain_spares.pop(call_id, None)  # a drain made one ready for this call
        while (left := res.deadline_left(lost_at)) > 0:
            spare = (ready or self._pool.take(avoid=self.draining() | {old.node_id})
                     or self._pool.take(avoid=self.draining()))
            ready = None
            if (spare is not None and cause is ResumeCause.ACTOR_LOST
                    and spare.node_id == old.node_id
                    and not await self._answers(spare, min(left, res.policy.same_node_probe_s))):
                spare.actor.retire()  # its node is likely the lost one
                self._counts.lost += 1
                continue
            if spare is None:
                spare = await self._cold_spare(left, limit)
                left = res.deadline_left(lost_at)
            try:
                report = await within(spare.actor.resume(ticket), max(left, 0.001),
                                      f"resume on {spare.actor.name}")
            except CallActorLost:  # it died too (its node may be the lost one): the next
                spare.actor.retire()
                self._counts.lost += 1
                continue
            except DeadlineExceeded:
                spare.actor.retire()
                raise ResumeFailed(f"not listening again within {limit}") from None
            except Exception as e:  # refused: an unreadable checkpoint, the caller gone
                spare.actor.retire()
                raise ResumeFailed(f"{type(e).__name__}: {e}") from None
            self._hand(call, to=spare, ticket=ticket, lost=cause is ResumeCause.ACTOR_LOST)
            if cause is ResumeCause.ACTOR_LOST and old.node_id:
                self._spawn(self._sweep(old.node_id))
            self._kick_refill()
            if report.listening_at is not None:
                await res.resumed(ResumeEvent(
                    call_id, cause, order.attempt, lost_at, report.listening_at, old.node_id,
                    report.node_id, report.turns_restored), self._policy.journal_timeout_s)
            return
        raise ResumeFailed(f"no call actor took the call within {limit}")

    async def _answers(self, spare: Spare, within_s: float) -> bool:
        """Whether ``spare`` answers within ``within_s`` (its process and node are alive)."""
        try:
            await within(spare.actor.info(), max(within_s, 0.001), f"info of {spare.actor.name}")
        except Exception:
            logger.warning("warm call actor on the lost actor's node does not answer; "
                           "starting one cold", extra={"actor": spare.actor.name,
                                                       "node": spare.node_id[:12]})
            return False
        return True

    async def _sweep(self, node_id: str) -> None:
        """After a loss on ``node_id``: its idle actors are asked (briefly) whether they are
        alive, and the silent ones retired, so no new call is begun on an actor of a lost
        node (Ray fails it only once the node is declared dead, seconds later)."""
        suspects = self._pool.remove_on(node_id)
        probe_s = self._resumption.policy.same_node_probe_s if self._resumption else 2.0
        alive = await asyncio.gather(*(self._answers(s, probe_s) for s in suspects))
        for spare, ok in zip(suspects, alive, strict=True):
            if ok:
                self._pool.add(spare)
            else:
                spare.actor.retire()
                self._counts.lost += 1
        if not all(alive):
            self._kick_refill()

    async def _cold_spare(self, left_s: float, limit: str) -> Spare:
        """No warm actor: start one now (seconds) for a call being resumed."""
        actor = self._factory.create(avoid_nodes=self.draining())
        self._counts.started += 1
        try:
            info = await within(actor.prepare(), max(left_s, 0.001), f"prepare of {actor.name}")
        except Exception as e:
            actor.retire()
            raise ResumeFailed(f"no warm call actor, and a new one was not ready within "
                               f"{limit}: {type(e).__name__}") from None
        return Spare(actor, info.node_id, info.calls_served)

    def _hand(self, call: LiveCall, *, to: Spare, ticket: CallTicket, lost: bool) -> None:
        """The call moves from its old actor (lost, or done with its part) to ``to``."""
        old = call.spare
        if lost:
            self._counts.lost += 1
        elif self._resumption is not None:
            self._resumption.handed_over_total += 1
        old.actor.retire()
        if call.reusable:
            self._pool.call_finished(old, reusable=True, completed=False)
        self._draining_calls.discard(ticket.call_id)
        call.spare, call.ticket = to, ticket
        call.reusable = self._pool.call_started(to)

    # --- draining nodes -----------------------------------------------------------------------
    async def drain_node(self, node_id: str) -> DrainReport:
        """Stop new calls on ``node_id`` (no new call actor there, its idle ones retired) and
        move each of its calls: once a call actor off the draining nodes is ready for it (a
        warm one, or one started now), the call is asked to hand over at its next turn
        boundary, so the caller's gap is a warm actor rejoining, never a cold start.
        Returns at once (``drain_status`` follows the calls). Idempotent."""
        if self._resumption is None:
            raise RuntimeError("draining needs the resume policy (RESUME_CALLS)")
        self._resumption.drain(node_id)
        spares = self._pool.remove_on(node_id)
        for spare in spares:
            spare.actor.retire()
        on_node = await self._calls_on(node_id)
        # a call that may not be carried on (a browser call, or one moved too often) stays
        # until it ends: handing it over would end it
        movable = [c for c in on_node if self._resumption.refusal(c.ticket.spec) is None]
        for call in movable:
            if call.ticket.call_id not in self._draining_calls:
                self._draining_calls.add(call.ticket.call_id)
                self._spawn(self._drain_call(call))
        self._kick_refill()
        logger.warning("node draining", extra={"node": node_id[:12], "spares_retired": len(
            spares), "handing_over": len(movable), "staying": len(on_node) - len(movable)})
        return DrainReport(node_id, len(spares), tuple(c.ticket.call_id for c in movable),
                           tuple(c.ticket.call_id for c in on_node))

    async def _drain_call(self, call: LiveCall) -> None:
        """Ready a call actor off the draining nodes for ``call``, then ask the call to hand
        over at its next turn boundary (``_resume`` gives it that actor). The call goes on
        where it is until that actor is ready, however long its cold start takes."""
        call_id = call.ticket.call_id
        try:
            spare = self._pool.take(avoid=self.draining())
            if spare is None:
                spare = await self._drain_spare(call)
            else:
                self._kick_refill()
            if self._calls.get(call_id) is not call:  # it ended meanwhile: a spare again
                self._pool.add(spare)
                self._draining_calls.discard(call_id)
                return
            self._drain_spares[call_id] = spare
            await self._stand_by(spare, call)
            asked = await within(call.spare.actor.hand_over(call_id),
                                 self._policy.reply_timeout_s,
                                 f"hand over on {call.spare.actor.name}")
            if not asked:
                raise RuntimeError("the call actor has no such call running")
        except Exception as e:
            unused = self._drain_spares.pop(call_id, None)
            if unused is not None:
                self._pool.add(unused)
            self._draining_calls.discard(call_id)
            logger.error("drain: call not moved", extra={
                "call_id": call_id, "error": f"{type(e).__name__}: {e}"})

    async def _drain_spare(self, call: LiveCall) -> Spare:
        """A call actor started now for a call being drained. A drain has no deadline but the
        call's end, so a cold start slower than ``prepare_timeout_s`` is waited for while the
        call goes on where it is: on a loaded node one took over a minute, and a drain that
        gave up then left the call on the node for good. Once the call has ended the actor has
        up to ``prepare_timeout_s`` more to be ready (it becomes a spare); an actor that fails
        to start is retired and the call stays."""
        actor = self._factory.create(avoid_nodes=self.draining())
        self._counts.started += 1
        prepare = asyncio.ensure_future(actor.prepare())
        try:
            while True:
                done, _ = await asyncio.wait({prepare}, timeout=self._policy.prepare_timeout_s)
                if done:
                    info = prepare.result()
                    return Spare(actor, info.node_id, info.calls_served)
                if self._calls.get(call.ticket.call_id) is not call:
                    raise ResumeFailed(
                        f"the call ended and a new call actor was not ready within "
                        f"CALL_ACTOR_PREPARE_TIMEOUT_S ({self._policy.prepare_timeout_s:g} s)")
                logger.warning("drain: the next call actor is still starting; the call stays "
                               "on its node until it is ready", extra={
                                   "call_id": call.ticket.call_id, "actor": actor.name})
        except BaseException:
            prepare.cancel()
            actor.retire()
            raise

    async def _stand_by(self, spare: Spare, call: LiveCall) -> None:
        """Make before break: ``spare`` joins the caller's line before the call hands over,
        so what the caller says in the hand-over gap reaches it. Where it cannot (a LiveKit
        room, or it does not answer in time) the hand-over goes on break-before-make."""
        try:
            standing = await within(spare.actor.stand_by(call.ticket),
                                    self._policy.reply_timeout_s,
                                    f"stand by on {spare.actor.name}")
        except Exception as e:
            standing = False
            logger.warning("drain: the next call actor did not join the line ahead", extra={
                "call_id": call.ticket.call_id, "error": f"{type(e).__name__}: {e}"})
        if standing and self._resumption is not None:
            self._resumption.stood_by_total += 1

    async def drain_status(self, node_id: str) -> DrainReport:
        on_node = await self._calls_on(node_id)
        return DrainReport(node_id, 0, (), tuple(c.ticket.call_id for c in on_node))

    def undrain_node(self, node_id: str) -> bool:
        """New call actors may go to ``node_id`` again."""
        changed = self._resumption is not None and self._resumption.undrain(node_id)
        if changed:
            self._kick_refill()
        return changed

    async def _calls_on(self, node_id: str) -> list[LiveCall]:
        """Live calls on ``node_id``; a cold-started actor's node is asked (it was unknown)."""
        calls = list(self._calls.values())
        unknown = [c for c in calls if not c.spare.node_id]
        infos = await asyncio.gather(*(within(c.spare.actor.info(), self._policy.reply_timeout_s,
                                              f"info of {c.spare.actor.name}") for c in unknown),
                                     return_exceptions=True)
        for call, info in zip(unknown, infos, strict=True):
            if isinstance(info, ActorInfo):
                call.spare.node_id = info.node_id
        return [c for c in calls if c.spare.node_id == node_id]
