"""``CallDispatch``: admits calls cluster-wide and supervises each one on a warm call actor.

The one dispatcher of the cluster (``actors/dispatcher.py`` is its Ray shell) owns:

- **admission** (``AdmissionControl``): no await inside a decision, so a burst cannot
  over-admit; over the limit the call goes to the bounded ``BusyLine``;
- the **warm pool** (``WarmPool``): prepared actors, reused after completed calls, refilled
  in the background (one at a time under load); a ``prepare()`` that fails or hangs retires
  that actor (nothing leaks) and the refill backs off;
- **supervision** of every call: ``begin`` then ``wait_end`` on its actor, each under a
  deadline. The call actor stores its own record and logs ``CALL_END``; the dispatcher only
  does so itself when the actor is lost (process or node died, cancelled, stuck past the
  deadline), with the reason;
- **recovery** after a restart (``recover``): call actors do not belong to the dispatcher
  (they are detached and named), so a new dispatcher adopts them: idle ones back into the
  pool, running calls back into admission and supervision, ended ones recycled. Admissions
  noted in the store with no record and no live actor are recorded as lost;
- **resume** (with a ``Resumption``, ``voice_ai.calls.resume``): a call whose actor is lost,
  or hands it over because its node drains, is carried on by another call actor from its
  last checkpoint: same call id, same admission slot, one record.

Every wait that crosses a process has a deadline (``DispatchPolicy``); a task exists per live
call, one for refill, and a fixed number for the busy line: nothing grows without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from voice_ai.calls.busy import BusyLine, RejectedCall
from voice_ai.calls.deadline import DeadlineExceeded, within
from voice_ai.calls.ports import (
    ActorInfo,
    ActorPhase,
    AdmissionJournal,
    BusyPlayer,
    CallActorFactory,
    CallActorLost,
    CallActorPort,
    CallEnd,
    CallTicket,
    Durability,
    RecordSink,
    TelemetrySink,
    direction_of,
)
from voice_ai.calls.resume import ResumeEvent, ResumeFailed, ResumeStatus, Resumption
from voice_ai.calls.warm_pool import Spare, WarmPool
from voice_ai.config import Settings
from voice_ai.pipeline.admission import AdmissionControl, Decision
from voice_ai.pipeline.checkpoint import ResumeCause, SavedCheckpoint
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome, CallRecord, EndReason
from voice_ai.store.call_store import PROVISIONAL_PREFIX
from voice_ai.webrtc.signalling import OfferDecision, OfferResult, SdpAnswer

__all__ = ["CallDispatch", "DispatchPolicy", "DispatchStatus", "DrainReport", "RecoveryReport",
           "StartResult"]

logger = logging.getLogger("voice_ai.dispatcher")
LOST_ERROR = "call actor lost (node or process died)"


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """Limits and deadlines, in seconds. ``from_settings`` maps the knobs."""

    max_concurrent_calls: int
    warm_target: int
    max_calls_per_actor: int
    prepare_timeout_s: float = 60.0  # start + prepare a call actor (a cold start takes ~6 s)
    begin_timeout_s: float = 15.0  # hand a call to a prepared actor
    call_deadline_s: float = 660.0  # admission -> end; past it the actor is stopped
    reply_timeout_s: float = 5.0  # info / reset / stats of an actor, the telemetry hub
    journal_timeout_s: float = 5.0
    busy_concurrency: int = 8
    busy_queue: int = 256
    busy_play_timeout_s: float = 20.0
    refill_backoff_s: float = 1.0
    refill_backoff_max_s: float = 30.0
    refill_attempts: int = 3  # failed rounds in a row before refill waits for the next kick
    keep_finished: int = 1000  # finished calls whose record ``wait_call`` can still return
    recovery_lookback_s: float = 1320.0  # admissions this old are looked for at recovery
    spare_max_idle_s: float = 0.0  # idle spares older than this are replaced (0: never)

    @classmethod
    def from_settings(cls, s: Settings) -> DispatchPolicy:
        deadline = s.max_call_duration_s + s.call_end_grace_s
        return cls(
            max_concurrent_calls=s.max_concurrent_calls,
            warm_target=s.warm_call_actors,
            max_calls_per_actor=s.call_actor_max_calls,
            prepare_timeout_s=s.call_actor_prepare_timeout_s,
            begin_timeout_s=s.call_begin_timeout_s,
            call_deadline_s=deadline,
            reply_timeout_s=s.actor_reply_timeout_s,
            journal_timeout_s=s.actor_reply_timeout_s,
            busy_concurrency=s.busy_message_concurrency,
            busy_play_timeout_s=s.busy_message_timeout_s,
            recovery_lookback_s=2 * deadline,
            spare_max_idle_s=s.warm_spare_max_idle_s,
        )


@dataclass(frozen=True, slots=True)
class StartResult:
    decision: Decision
    call_id: str
    warm: bool = False


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    adopted_idle: int = 0
    adopted_busy: int = 0
    adopted_ended: int = 0
    unreachable: int = 0
    lost_admissions: int = 0
    ready_after_s: float = 0.0  # from the start of recovery until admissions went on


@dataclass(frozen=True, slots=True)
class DispatchStatus:
    active_calls: int
    max_concurrent_calls: int
    warm_ready: int
    warm_target: int
    accepted_total: int
    rejected_total: int
    call_actors_started_total: int
    call_actors_reused_total: int
    call_actors_lost_total: int
    prepare_failures_total: int
    busy_pending: int
    busy_overflow_total: int
    active_call_ids: tuple[str, ...]
    recovery: RecoveryReport | None
    resume: ResumeStatus | None = None


@dataclass(frozen=True, slots=True)
class DrainReport:
    """``drain_node``: what was on the node, and what is still there."""

    node_id: str
    spares_retired: int  # idle call actors of the node, stopped
    handing_over: tuple[str, ...]  # calls to hand over at their next turn boundary, each as
    # soon as a call actor off the draining nodes is ready for it
    calls_left: tuple[str, ...]  # calls still running on the node


@dataclass
class _Call:
    ticket: CallTicket
    spare: Spare
    reusable: bool
    done: asyncio.Future[CallRecord] = field(repr=False)
    offer: asyncio.Future[SdpAnswer] | None = field(default=None, repr=False)  # browser calls


class CallDispatch:
    def __init__(
        self,
        policy: DispatchPolicy,
        factory: CallActorFactory,
        records: RecordSink,
        journal: AdmissionJournal,
        telemetry: TelemetrySink,
        busy_player: BusyPlayer | None,
        *,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        resumption: Resumption | None = None,
    ) -> None:
        self.policy = policy
        self._resumption = resumption
        self._factory = factory
        self._records = records
        self._journal = journal
        self._telemetry = telemetry
        self._wall = wall_clock
        self._sleep = sleep
        self._admission = AdmissionControl(policy.max_concurrent_calls)
        self._pool = WarmPool(policy.warm_target, policy.max_calls_per_actor)
        self._busy = BusyLine(records, busy_player, concurrency=policy.busy_concurrency,
                              queue_size=policy.busy_queue,
                              play_timeout_s=policy.busy_play_timeout_s)
        self._calls: dict[str, _Call] = {}
        self._finished: dict[str, asyncio.Future[CallRecord]] = {}
        self._cancelled: dict[str, EndReason] = {}
        self._draining_calls: set[str] = set()  # calls a drain is moving (``_drain_call``)
        self._drain_spares: dict[str, Spare] = {}  # call id -> the actor ready to carry it on
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refill: asyncio.Task[None] | None = None
        self._rotation: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()  # set once recovery has run (or was not needed)
        self._recovery: RecoveryReport | None = None
        self.actors_started = 0
        self.actors_reused = 0
        self.actors_lost = 0
        self.prepare_failures = 0

    # --- admission --------------------------------------------------------------------------
    async def start_call(self, spec: CallSpec, key: str | None = None) -> StartResult:
        """Admit a call and start it. ``key`` (a room name) makes repeats idempotent."""
        result, _call = await self._admit(spec, key, offer=False)
        return result

    async def offer_call(self, spec: CallSpec) -> OfferResult:
        """A browser's offer (``spec.webrtc_offer``): admitted like any call; a call actor
        answers the SDP before the call begins. Failed: the slot is freed, the call recorded."""
        result, call = await self._admit(spec, None, offer=True)
        if result.decision is Decision.REJECTED:
            return OfferResult(OfferDecision.REJECTED, result.call_id,
                               reason="over MAX_CONCURRENT_CALLS")
        if call is None or call.offer is None:  # a repeated offer of a call already running
            return OfferResult(OfferDecision.FAILED, result.call_id,
                               reason="this call was already offered")
        try:
            answer = await asyncio.shield(call.offer)
        except Exception as e:
            return OfferResult(OfferDecision.FAILED, result.call_id,
                               reason=f"no call actor answered: {type(e).__name__}")
        return OfferResult(OfferDecision.ACCEPTED, result.call_id, answer)

    async def _admit(self, spec: CallSpec, key: str | None, *,
                     offer: bool) -> tuple[StartResult, _Call | None]:
        await within(self._ready.wait(), self.policy.prepare_timeout_s, "dispatcher recovery")
        admitted_at = self._wall()
        key = key or spec.call_id
        decision, call_id = self._admission.admit(key, spec.call_id)
        if decision is Decision.DUPLICATE:
            return StartResult(decision, call_id), None
        direction = direction_of(spec)
        if decision is Decision.REJECTED:
            self._telemetry.call_rejected(call_id, direction, spec.caller_masked)
            record = CallRecord(call_id=call_id, direction=direction, started_at=admitted_at,
                                ended_at=self._wall(), end_reason=EndReason.REJECTED_BUSY,
                                caller_masked=spec.caller_masked, warm_start=False)
            self._busy.submit(RejectedCall(record, spec.room))
            return StartResult(decision, call_id), None
        spare = self._pool.take(avoid=self._draining())
        warm = spare is not None
        ticket = CallTicket(replace(spec, admitted_at=admitted_at, warm=warm), key)
        if spare is None:  # a cold start: the new actor begins the call by itself (not a
            # browser call: its offer must be answered first)
            spare = Spare(self._factory.create(None if offer else ticket,
                                               avoid_nodes=self._draining()), "")
            self.actors_started += 1
        loop = asyncio.get_running_loop()
        call = _Call(ticket, spare, self._pool.call_started(spare), loop.create_future(),
                     loop.create_future() if offer else None)
        self._calls[call_id] = call
        self._telemetry.call_started(call_id, direction, spec.caller_masked, spare.node_id[:12])
        self._spawn(self._supervise(call, begin=True))
        self._kick_refill()
        return StartResult(decision, call_id, warm), call

    async def admit_room(self, room: str, caller_masked: str, outbound: bool,
                         call_id: str) -> StartResult:
        """A LiveKit room needs an agent (webhook or outbound dial). Idempotent per room."""
        spec = CallSpec(call_id=call_id, room=room, caller_masked=caller_masked,
                        outbound=outbound)
        return await self.start_call(spec, key=room)

    def cancel_room(self, room: str, reason: EndReason) -> bool:
        """The admitted call in ``room`` never connected: stop its actor, record ``reason``."""
        for call_id, call in self._calls.items():
            if call.ticket.key == room:
                self._cancelled[call_id] = reason
                call.spare.actor.retire()
                return True
        return False

    async def wait_call(self, call_id: str) -> CallRecord:
        call = self._calls.get(call_id)
        fut = call.done if call is not None else self._finished.get(call_id)
        if fut is None:
            raise KeyError(f"unknown call id {call_id}")
        record = await asyncio.shield(fut)
        self._finished.pop(call_id, None)
        return record

    async def run_simulated(self, spec: CallSpec) -> CallRecord | StartResult:
        """Admit, run and wait for one simulated call (the CLI and tests use this)."""
        started = await self.start_call(spec)
        if started.decision is not Decision.ACCEPTED:
            return started
        return await self.wait_call(started.call_id)

    # --- one call, from begin to recycling ----------------------------------------------------
    async def _supervise(self, call: _Call, *, begin: bool) -> None:
        ticket = call.ticket
        lost = True
        try:
            if begin:
                await self._begin(call)
            end = await self._follow(call)
            record, lost = end.record, False
        except CallActorLost as e:
            reason = self._cancelled.pop(ticket.call_id, None)
            record = (self._failed(ticket, reason, "cancelled: the call never connected")
                      if reason is not None else
                      self._failed(ticket, EndReason.NODE_LOST, f"{LOST_ERROR}: {e}"))
        except ResumeFailed as e:  # lost (or handed over), and no call actor could carry it on
            assert self._resumption is not None
            self._resumption.failed(ticket.call_id, str(e))
            record = replace(self._failed(ticket, EndReason.NODE_LOST,
                                          f"{LOST_ERROR}; not resumed: {e}"),
                             turns=self._resumption.turns_of(ticket.call_id))
        except DeadlineExceeded as e:
            record = self._failed(ticket, EndReason.TIMEOUT, str(e))
        except Exception as e:
            record = self._failed(ticket, EndReason.ERROR, f"{type(e).__name__}: {e}")
        if self._resumption is not None:
            self._resumption.forget(ticket.call_id)
        self._draining_calls.discard(ticket.call_id)
        unused = self._drain_spares.pop(ticket.call_id, None)
        if unused is not None:  # the call ended before it handed over: the actor is a spare
            self._pool.add(unused)
        actor = call.spare.actor  # the last one to carry the call
        if lost:  # the actor could not record its call: do it here, durable first
            self.actors_lost += 1
            actor.retire()
            await self._records.store(record)
            await self._report_end(record)
        self._admission.release(ticket.key)
        self._calls.pop(ticket.call_id, None)
        if not lost:  # back in the pool before anyone hears the call ended: a call placed
            # right after it finds the actor ready
            await self._recycle(call.spare, reusable=call.reusable,
                                completed=_served_well(record))
        elif call.reusable:
            self._pool.call_finished(call.spare, reusable=True, completed=False)
        self._finish(ticket.call_id, call.done, record)
        self._kick_refill()

    async def _follow(self, call: _Call) -> CallEnd:
        """The call's end, under the call deadline; each time its actor is lost or hands it
        over (a drain) the call is carried on by another (``_resume``) when it may be."""
        ticket = call.ticket
        while True:
            actor = call.spare.actor
            elapsed = max(0.0, self._wall() - ticket.spec.admitted_at)
            try:
                end = await within(actor.wait_end(ticket.call_id),
                                   max(self.policy.call_deadline_s - elapsed, 0.001),
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

    async def _note_final_checkpoint(self, call: _Call) -> None:
        """The checkpoint a call actor made as it handed its call over: the actor keeps it
        (``info``); its own push to the dispatcher may still be on its way."""
        assert self._resumption is not None
        try:
            info = await within(call.spare.actor.info(), self.policy.reply_timeout_s,
                                f"info of {call.spare.actor.name}")
        except Exception:  # gone meanwhile: the checkpoint held is the latest there is
            return
        if info.checkpoint is not None:
            self._resumption.note(info.checkpoint)

    async def _resume(self, call: _Call, cause: ResumeCause, lost_at: float) -> None:
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
            spare = (ready or self._pool.take(avoid=self._draining() | {old.node_id})
                     or self._pool.take(avoid=self._draining()))
            ready = None
            if spare is None:
                spare = await self._cold_spare(left, limit)
                left = res.deadline_left(lost_at)
            try:
                report = await within(spare.actor.resume(ticket), max(left, 0.001),
                                      f"resume on {spare.actor.name}")
            except CallActorLost:  # it died too (its node may be the lost one): the next
                spare.actor.retire()
                self.actors_lost += 1
                continue
            except DeadlineExceeded:
                spare.actor.retire()
                raise ResumeFailed(f"not listening again within {limit}") from None
            except Exception as e:  # refused: an unreadable checkpoint, the caller gone
                spare.actor.retire()
                raise ResumeFailed(f"{type(e).__name__}: {e}") from None
            self._hand(call, to=spare, ticket=ticket, lost=cause is ResumeCause.ACTOR_LOST)
            self._kick_refill()
            if report.listening_at is not None:
                await res.resumed(ResumeEvent(
                    call_id, cause, order.attempt, lost_at, report.listening_at, old.node_id,
                    report.node_id, report.turns_restored), self.policy.journal_timeout_s)
            return
        raise ResumeFailed(f"no call actor took the call within {limit}")

    async def _cold_spare(self, left_s: float, limit: str) -> Spare:
        """No warm actor: start one now (seconds) for a call being resumed."""
        actor = self._factory.create(avoid_nodes=self._draining())
        self.actors_started += 1
        try:
            info = await within(actor.prepare(), max(left_s, 0.001), f"prepare of {actor.name}")
        except Exception as e:
            actor.retire()
            raise ResumeFailed(f"no warm call actor, and a new one was not ready within "
                               f"{limit}: {type(e).__name__}") from None
        return Spare(actor, info.node_id, info.calls_served)

    def _hand(self, call: _Call, *, to: Spare, ticket: CallTicket, lost: bool) -> None:
        """The call moves from its old actor (lost, or done with its part) to ``to``."""
        old = call.spare
        if lost:
            self.actors_lost += 1
        elif self._resumption is not None:
            self._resumption.handed_over_total += 1
        old.actor.retire()
        if call.reusable:
            self._pool.call_finished(old, reusable=True, completed=False)
        self._draining_calls.discard(ticket.call_id)
        call.spare, call.ticket = to, ticket
        call.reusable = self._pool.call_started(to)

    def _reserve(self) -> int:
        """While calls are live and may be resumed, one idle call actor is kept for a resume:
        a cold one takes seconds to start, a warm one rejoins at once."""
        return self._resume_reserve() if self._calls else 0

    def _resume_reserve(self) -> int:
        res = self._resumption
        return 1 if res is not None and res.policy.enabled else 0

    def _draining(self) -> frozenset[str]:
        return self._resumption.draining if self._resumption is not None else frozenset()

    # --- checkpoints and draining nodes ------------------------------------------------------
    def checkpoint(self, saved: SavedCheckpoint) -> bool:
        """A call actor's checkpoint after a turn: kept while its call is live."""
        if self._resumption is None or saved.call_id not in self._calls:
            return False
        return self._resumption.note(saved)

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

    async def _drain_call(self, call: _Call) -> None:
        """Ready a call actor off the draining nodes for ``call``, then ask the call to hand
        over at its next turn boundary (``_resume`` gives it that actor). If none gets ready
        within ``prepare_timeout_s`` the call stays where it is (a later drain tries again)."""
        call_id = call.ticket.call_id
        try:
            spare = self._pool.take(avoid=self._draining())
            if spare is None:
                spare = await self._cold_spare(self.policy.prepare_timeout_s,
                                               "CALL_ACTOR_PREPARE_TIMEOUT_S")
            else:
                self._kick_refill()
            if self._calls.get(call_id) is not call:  # it ended meanwhile: a spare again
                self._pool.add(spare)
                self._draining_calls.discard(call_id)
                return
            self._drain_spares[call_id] = spare
            asked = await within(call.spare.actor.hand_over(call_id),
                                 self.policy.reply_timeout_s,
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

    async def drain_status(self, node_id: str) -> DrainReport:
        on_node = await self._calls_on(node_id)
        return DrainReport(node_id, 0, (), tuple(c.ticket.call_id for c in on_node))

    def undrain_node(self, node_id: str) -> bool:
        """New call actors may go to ``node_id`` again."""
        changed = self._resumption is not None and self._resumption.undrain(node_id)
        if changed:
            self._kick_refill()
        return changed

    async def _calls_on(self, node_id: str) -> list[_Call]:
        """Live calls on ``node_id``; a cold-started actor's node is asked (it was unknown)."""
        calls = list(self._calls.values())
        unknown = [c for c in calls if not c.spare.node_id]
        infos = await asyncio.gather(*(within(c.spare.actor.info(), self.policy.reply_timeout_s,
                                              f"info of {c.spare.actor.name}") for c in unknown),
                                     return_exceptions=True)
        for call, info in zip(unknown, infos, strict=True):
            if isinstance(info, ActorInfo):
                call.spare.node_id = info.node_id
        return [c for c in calls if c.spare.node_id == node_id]

    async def _begin(self, call: _Call) -> None:
        ticket, actor = call.ticket, call.spare.actor
        journal = asyncio.ensure_future(within(
            self._journal.admitted(ticket, ticket.spec.admitted_at),
            self.policy.journal_timeout_s, "admission journal"))
        try:
            if ticket.spec.warm or call.offer is not None:  # else created with its ticket
                await self._hand_over(call, actor)
        finally:
            try:
                await journal
            except Exception as e:  # recovery is weaker without it; the call goes on
                logger.warning("admission not journaled", extra={
                    "call_id": ticket.call_id, "error": f"{type(e).__name__}: {e}"})

    async def _hand_over(self, call: _Call, actor: CallActorPort) -> None:
        ticket = call.ticket
        timeout = self.policy.begin_timeout_s
        if not ticket.spec.warm:  # a cold actor starts and prepares first
            timeout += self.policy.prepare_timeout_s
        if call.offer is not None:
            try:
                answer = await within(actor.answer_offer(ticket), timeout,
                                      f"offer answer on {actor.name}")
            except BaseException as e:
                call.offer.set_exception(e)
                raise
            call.offer.set_result(answer)
        await within(actor.begin(ticket), timeout, f"begin on {actor.name}")

    async def _recycle(self, spare: Spare, *, reusable: bool, completed: bool) -> None:
        draining = spare.node_id in self._draining()  # its node takes no calls: retire it
        if not self._pool.call_finished(spare, reusable=reusable,
                                        completed=completed and not draining,
                                        reserve=self._resume_reserve()):
            spare.actor.retire()
            return
        try:
            await within(spare.actor.reset(), self.policy.reply_timeout_s,
                         f"reset of {spare.actor.name}")
        except Exception as e:
            logger.warning("call actor not reusable, retiring it", extra={
                "actor": spare.actor.name, "error": type(e).__name__})
            self._pool.lost_back()
            spare.actor.retire()
            return
        spare.idle_since = self._wall()
        self._pool.put_back(spare)
        self.actors_reused += 1

    async def _report_end(self, record: CallRecord) -> None:
        try:
            await within(self._telemetry.call_ended(record), self.policy.reply_timeout_s,
                         "telemetry hub")
        except Exception as e:  # the hub reconciles its gauge from status(); the record is safe
            logger.warning("CALL_END not reported", extra={
                "call_id": record.call_id, "error": f"{type(e).__name__}: {e}"})

    def _finish(self, call_id: str, done: asyncio.Future[CallRecord], record: CallRecord) -> None:
        if not done.done():
            done.set_result(record)
        self._finished[call_id] = done
        while len(self._finished) > self.policy.keep_finished:  # oldest first (dict order)
            del self._finished[next(iter(self._finished))]

    def _failed(self, ticket: CallTicket, reason: EndReason, error: str) -> CallRecord:
        spec = ticket.spec
        return CallRecord(call_id=spec.call_id, direction=ticket.direction,
                          started_at=spec.admitted_at, ended_at=self._wall(), end_reason=reason,
                          caller_masked=spec.caller_masked, warm_start=spec.warm, error=error)

    # --- the warm pool ---------------------------------------------------------------------
    async def fill_warm_pool(self) -> int:
        """Refill now and wait for it; return how many prepared actors are idle."""
        self._kick_refill()
        if self._refill is not None:
            await asyncio.shield(self._refill)
        return self._pool.idle

    def _kick_refill(self) -> None:
        if self._refill is None or self._refill.done():
            self._refill = asyncio.create_task(self._refill_loop())
        if self.policy.spare_max_idle_s > 0 and self._rotation is None:
            self._rotation = asyncio.create_task(self._rotate_spares())

    async def _rotate_spares(self) -> None:
        """Replace spares idle longer than ``spare_max_idle_s``. Their replacements go where
        the scheduler packs actors now (with CALL_ACTOR_PLACEMENT=pack: the fuller nodes
        first), so idle spares never keep a node up that a burst brought up: the node
        empties and the autoscaler removes it."""
        max_idle = self.policy.spare_max_idle_s
        while True:
            await self._sleep(max_idle / 2)
            stale = self._pool.take_stale(self._wall() - max_idle)
            for spare in stale:
                logger.info("idle call actor replaced", extra={"actor": spare.actor.name})
                spare.actor.retire()
            if stale:
                self._kick_refill()

    async def _refill_loop(self) -> None:
        backoff, failed_rounds = self.policy.refill_backoff_s, 0
        while (n := self._pool.to_start(busy=bool(self._calls), reserve=self._reserve())) > 0:
            ok = await asyncio.gather(*(self._start_spare() for _ in range(n)))
            if all(ok):
                backoff, failed_rounds = self.policy.refill_backoff_s, 0
                continue
            failed_rounds += 1
            if failed_rounds >= self.policy.refill_attempts:
                logger.error("warm pool refill gave up for now", extra={
                    "idle": self._pool.idle, "target": self._pool.target})
                return
            await self._sleep(backoff)
            backoff = min(2 * backoff, self.policy.refill_backoff_max_s)

    async def _start_spare(self) -> bool:
        self._pool.starting += 1
        actor = self._factory.create(avoid_nodes=self._draining())
        self.actors_started += 1
        try:
            info = await within(actor.prepare(), self.policy.prepare_timeout_s,
                                f"prepare of {actor.name}")
        except Exception as e:  # never leak it: a half-started actor is stopped
            self.prepare_failures += 1
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

    # --- after a restart -------------------------------------------------------------------
    async def recover(self) -> RecoveryReport:
        """Adopt the call actors that outlived the previous dispatcher; record lost calls.

        Admissions wait until every actor that answers within ``reply_timeout_s`` is adopted
        (so admission counts its calls). One that is slower (still starting, or busy) is
        adopted when it answers, within ``prepare_timeout_s``; only a dead one is stopped.
        Admissions journaled with no record and no live actor are recorded last."""
        counts: dict[str, int] = {}
        slow: list[CallActorPort] = []
        started = self._wall()
        try:
            t = self.policy.reply_timeout_s
            actors = await within(self._factory.existing(), self.policy.prepare_timeout_s,
                                  "call actor listing")
            infos = await asyncio.gather(
                *(within(a.info(), t, f"info of {a.name}") for a in actors),
                return_exceptions=True)
            for actor, info in zip(actors, infos, strict=True):
                if isinstance(info, ActorInfo):
                    kind = self._adopt(actor, info)
                elif isinstance(info, DeadlineExceeded):
                    slow.append(actor)
                    continue
                else:  # gone (or broken): stop what is left of it
                    actor.retire()
                    kind = "unreachable"
                counts[kind] = counts.get(kind, 0) + 1
        except Exception as e:  # no listing: admissions go on; nothing adopted now
            logger.error("dispatcher recovery failed", extra={"error": f"{type(e).__name__}: {e}"})
        finally:
            ready_at = self._wall()
            self._ready.set()
        for kind in await asyncio.gather(*(self._adopt_late(a) for a in slow)):
            counts[kind] = counts.get(kind, 0) + 1
        ready_after_s = round(ready_at - started, 3)
        report = RecoveryReport(counts.get("idle", 0), counts.get("busy", 0),
                                counts.get("ended", 0), counts.get("unreachable", 0),
                                await self._record_lost_admissions(), ready_after_s)
        self._recovery = report
        found = (report.adopted_idle, report.adopted_busy, report.adopted_ended,
                 report.unreachable, report.lost_admissions)
        logger.log(logging.WARNING if any(found) else logging.INFO, "dispatcher recovered",
                   extra=asdict(report))
        self._kick_refill()
        return report

    def mark_ready(self) -> None:
        """A first start: nothing to recover."""
        self._ready.set()

    async def wait_ready(self) -> None:
        """Until recovery lets admissions go on."""
        await self._ready.wait()

    async def _adopt_late(self, actor: CallActorPort) -> str:
        try:
            info = await within(actor.info(), self.policy.prepare_timeout_s,
                                f"info of {actor.name}")
        except Exception:
            actor.retire()
            return "unreachable"
        return self._adopt(actor, info)

    def _adopt(self, actor: CallActorPort, info: ActorInfo) -> str:
        if info.phase is ActorPhase.IDLE:
            self._pool.add(Spare(actor, info.node_id, info.calls_served, self._wall()))
            return "idle"
        if info.phase is ActorPhase.BUSY and info.ticket is not None:
            if info.ticket.call_id not in self._calls:
                self._adopt_busy(actor, info, info.ticket)
            return "busy"
        if info.end is not None:
            spare = Spare(actor, info.node_id, info.calls_served)
            reusable = spare.calls < self._pool.max_calls
            self._pool.returning += reusable
            self._spawn(self._recycle(spare, reusable=reusable,
                                      completed=_served_well(info.end.record)))
            return "ended"
        actor.retire()
        return "unreachable"

    def _adopt_busy(self, actor: CallActorPort, info: ActorInfo, ticket: CallTicket) -> None:
        spare = Spare(actor, info.node_id, info.calls_served)
        reusable = spare.calls < self._pool.max_calls
        self._pool.returning += reusable
        if info.checkpoint is not None and self._resumption is not None:
            self._resumption.note(info.checkpoint)  # the new dispatcher holds it again
        self._admission.adopt(ticket.key, ticket.call_id)
        call = _Call(ticket, spare, reusable, asyncio.get_running_loop().create_future())
        self._calls[ticket.call_id] = call
        self._spawn(self._supervise(call, begin=False))

    async def _record_lost_admissions(self) -> int:
        since = self._wall() - self.policy.recovery_lookback_s
        try:
            open_tickets = await within(self._journal.unfinished(since),
                                        self.policy.journal_timeout_s, "admission journal")
        except Exception as e:
            logger.warning("admission journal not read at recovery", extra={
                "error": f"{type(e).__name__}: {e}"})
            return 0
        lost = [t for t in open_tickets if t.call_id not in self._calls]
        for call in lost:
            record = CallRecord(
                call_id=call.call_id, direction=call.direction, started_at=call.admitted_at,
                ended_at=self._wall(), end_reason=EndReason.NODE_LOST,
                caller_masked=call.caller_masked, warm_start=call.warm,
                error=f"{PROVISIONAL_PREFIX}{LOST_ERROR} while the dispatcher was restarting")
            await self._records.store(record)
            await self._report_end(record)
        return len(lost)

    # --- views -----------------------------------------------------------------------------
    def status(self) -> DispatchStatus:
        return DispatchStatus(
            active_calls=self._admission.active,
            max_concurrent_calls=self._admission.limit,
            warm_ready=self._pool.idle,
            warm_target=self._pool.target,
            accepted_total=self._admission.accepted_total,
            rejected_total=self._admission.rejected_total,
            call_actors_started_total=self.actors_started,
            call_actors_reused_total=self.actors_reused,
            call_actors_lost_total=self.actors_lost,
            prepare_failures_total=self.prepare_failures,
            busy_pending=self._busy.pending,
            busy_overflow_total=self._busy.overflowed,
            active_call_ids=tuple(self._calls),
            recovery=self._recovery,
            resume=self._resumption.status() if self._resumption is not None else None,
        )

    def actors(self) -> list[CallActorPort]:
        """Every call actor in use or idle (for process stats)."""
        return [c.spare.actor for c in self._calls.values()] + [
            s.actor for s in self._pool.spares()]

    async def drain_busy_line(self) -> None:
        await self._busy.drain()

    async def close(self) -> None:
        """Stop supervising (the call actors carry on: a new dispatcher adopts them)."""
        tasks = [*self._tasks, *([self._refill] if self._refill else []),
                 *([self._rotation] if self._rotation else []), *self._busy.workers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _served_well(record: CallRecord) -> bool:
    """A call that ended normally leaves its actor fit for the next one."""
    return record.outcome in (CallOutcome.COMPLETED, CallOutcome.TRANSFERRED)
