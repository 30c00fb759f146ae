"""``CallDispatch``: admits calls cluster-wide and supervises each one on a warm call actor.

The one dispatcher of the cluster (``actors/dispatcher.py`` is its Ray shell) owns:

- **admission** (``AdmissionControl``): no await inside a decision, so a burst cannot
  over-admit; over the limit the call goes to the bounded ``BusyLine``;
- the **warm pool** (``WarmPool``): prepared actors, reused after completed calls, refilled
  in the background (``PoolRefill``, ``voice_ai.calls.refill``: one at a time under load; a
  ``prepare()`` that fails or hangs retires that actor and the refill backs off);
- **supervision** of every call: ``begin`` (``CallStarter``, ``voice_ai.calls.begin``) then
  ``wait_end`` on its actor, each under a deadline. The call actor stores its own record and
  logs ``CALL_END``; the dispatcher only does so itself when the actor is lost (process or
  node died, cancelled, stuck past the deadline), with the reason;
- **recovery** after a restart (``recover``, ``voice_ai.calls.recovery``): call actors do not
  belong to the dispatcher (they are detached and named), so a new dispatcher adopts them:
  idle ones back into the pool, running calls back into admission and supervision, ended ones
  recycled. Admissions noted in the store with no record and no live actor are recorded as
  lost;
- **resume** (with a ``Resumption``, ``voice_ai.calls.resume``): a call whose actor is lost,
  or hands it over because its node drains, is carried on by another call actor from its
  last checkpoint: same call id, same admission slot, one record (``CallCarrier``,
  ``voice_ai.calls.carry_on``, which also drains nodes).

Every wait that crosses a process has a deadline (``DispatchPolicy``,
``voice_ai.calls.dispatch_policy``); a task exists per live call, one for refill, and a fixed
number for the busy line: nothing grows without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from voice_ai.calls.begin import CallStarter
from voice_ai.calls.busy import BusyLine, RejectedCall
from voice_ai.calls.carry_on import CallCarrier, DrainReport, LiveCall
from voice_ai.calls.deadline import DeadlineExceeded, within
from voice_ai.calls.dispatch_policy import DispatchPolicy
from voice_ai.calls.ports import (
    ActorInfo,
    AdmissionJournal,
    BusyPlayer,
    CallActorFactory,
    CallActorLost,
    CallActorPort,
    CallTicket,
    RecordSink,
    TelemetrySink,
    direction_of,
)
from voice_ai.calls.recovery import LOST_ERROR, RecoveryReport, recover
from voice_ai.calls.refill import PoolRefill
from voice_ai.calls.resume import ResumeFailed, ResumeStatus, Resumption
from voice_ai.calls.warm_pool import ActorCounts, Spare, WarmPool, resume_reserve
from voice_ai.pipeline.admission import AdmissionControl, Decision
from voice_ai.pipeline.checkpoint import SavedCheckpoint
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome, CallRecord, EndReason
from voice_ai.webrtc.signalling import OfferDecision, OfferResult

__all__ = ["CallDispatch", "DispatchPolicy", "DispatchStatus", "DrainReport", "RecoveryReport",
           "StartResult"]

logger = logging.getLogger("voice_ai.dispatcher")


@dataclass(frozen=True, slots=True)
class StartResult:
    decision: Decision
    call_id: str
    warm: bool = False


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
        home_node: str = "",
    ) -> None:
        self.policy = policy
        self._resumption = resumption
        self._factory = factory
        self._records = records
        self._journal = journal
        self._telemetry = telemetry
        self._wall = wall_clock
        self._admission = AdmissionControl(policy.max_concurrent_calls)
        self._pool = WarmPool(policy.warm_target, policy.max_calls_per_actor)
        self._busy = BusyLine(records, busy_player, concurrency=policy.busy_concurrency,
                              queue_size=policy.busy_queue,
                              play_timeout_s=policy.busy_play_timeout_s)
        self._calls: dict[str, LiveCall] = {}
        self._finished: dict[str, asyncio.Future[CallRecord]] = {}
        self._cancelled: dict[str, EndReason] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ready = asyncio.Event()  # set once recovery has run (or was not needed)
        self._recovery: RecoveryReport | None = None
        self._counts = ActorCounts()
        self._carrier = CallCarrier(self._calls, self._pool, factory, policy, self._counts,
                                    resumption, cancelled=self._cancelled,
                                    kick_refill=self._kick_refill, spawn=self._spawn,
                                    wall_clock=wall_clock)
        self._refill = PoolRefill(self._pool, factory, policy, self._counts,
                                  busy=lambda: bool(self._calls), reserve=self._reserve,
                                  call_nodes=self._call_nodes,
                                  draining=self._carrier.draining, wall_clock=wall_clock,
                                  sleep=sleep, home=home_node)
        self._starter = CallStarter(self._pool, factory, journal, policy, self._counts,
                                    cancelled=self._cancelled, draining=self._carrier.draining,
                                    kick_refill=self._kick_refill)

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
                     offer: bool) -> tuple[StartResult, LiveCall | None]:
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
            self._counts.started += 1
        loop = asyncio.get_running_loop()
        call = LiveCall(ticket, spare, self._pool.call_started(spare), loop.create_future(),
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
    async def _supervise(self, call: LiveCall, *, begin: bool) -> None:
        ticket = call.ticket
        lost = True
        try:
            if begin:
                await self._starter.begin(call)
            end = await self._carrier.follow(call)
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
        self._carrier.call_ended(ticket.call_id)
        actor = call.spare.actor  # the last one to carry the call
        if lost:  # the actor could not record its call: do it here, durable first
            self._counts.lost += 1
            actor.retire()
            await self._records.store(record)
            await self._report_end(record)
        self._admission.release(ticket.key)
        # ``wait_call`` finds the call among the finished ones from the moment it is no longer
        # live: the recycling below awaits the actor (its reset), and a wait asked meanwhile
        # (e.g. right after a drain saw the call leave its node) got "unknown call id"
        self._finished[ticket.call_id] = call.done
        self._calls.pop(ticket.call_id, None)
        if not lost:  # back in the pool before anyone hears the call ended: a call placed
            # right after it finds the actor ready
            await self._recycle(call.spare, reusable=call.reusable,
                                completed=_served_well(record))
        elif call.reusable:
            self._pool.call_finished(call.spare, reusable=True, completed=False)
        self._finish(ticket.call_id, call.done, record)
        self._kick_refill()

    def _reserve(self) -> int:
        """While calls are live and may be resumed, idle call actors are kept for resumes
        (``resume_reserve``): a cold one takes seconds to start, a warm one rejoins at once."""
        return self._resume_reserve() if self._calls else 0

    def _resume_reserve(self) -> int:
        res = self._resumption
        if res is None or not res.policy.enabled:
            return 0
        return resume_reserve(self._call_nodes())

    def _call_nodes(self) -> set[str]:
        return {c.spare.node_id for c in self._calls.values()}

    def _draining(self) -> frozenset[str]:
        return self._carrier.draining()

    def _kick_refill(self) -> None:
        self._refill.kick()

    # --- checkpoints and draining nodes ------------------------------------------------------
    def checkpoint(self, saved: SavedCheckpoint) -> bool:
        """A call actor's checkpoint after a turn: kept while its call is live."""
        if self._resumption is None or saved.call_id not in self._calls:
            return False
        return self._resumption.note(saved)

    async def drain_node(self, node_id: str) -> DrainReport:
        """Stop new calls on ``node_id`` and hand its calls over (``CallCarrier.drain_node``).
        Returns at once (``drain_status`` follows the calls). Idempotent."""
        return await self._carrier.drain_node(node_id)

    async def drain_status(self, node_id: str) -> DrainReport:
        return await self._carrier.drain_status(node_id)

    def undrain_node(self, node_id: str) -> bool:
        """New call actors may go to ``node_id`` again."""
        return self._carrier.undrain_node(node_id)

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
        self._counts.reused += 1

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
        return await self._refill.fill()

    # --- after a restart -------------------------------------------------------------------
    async def recover(self) -> RecoveryReport:
        """Adopt the call actors that outlived the previous dispatcher and record the lost
        admissions (``voice_ai.calls.recovery``); admissions go on once it says ``ready``."""
        self._recovery = await recover(self._factory, self._journal, self.policy,
                                       _Adoption(self), ready=self._ready,
                                       wall_clock=self._wall)
        self._kick_refill()
        return self._recovery

    def mark_ready(self) -> None:
        """A first start: nothing to recover."""
        self._ready.set()

    async def wait_ready(self) -> None:
        """Until recovery lets admissions go on."""
        await self._ready.wait()

    def _adopt_idle(self, actor: CallActorPort, info: ActorInfo) -> None:
        self._pool.add(Spare(actor, info.node_id, info.calls_served, self._wall()))

    def _returning(self, actor: CallActorPort, info: ActorInfo) -> tuple[Spare, bool]:
        """An adopted actor with a call (running or ended): whether it comes back to the pool
        after it, counted as returning."""
        spare = Spare(actor, info.node_id, info.calls_served)
        reusable = spare.calls < self._pool.max_calls
        self._pool.returning += reusable
        return spare, reusable

    def _adopt_busy(self, actor: CallActorPort, info: ActorInfo) -> None:
        ticket = info.ticket
        assert ticket is not None
        spare, reusable = self._returning(actor, info)
        if info.checkpoint is not None and self._resumption is not None:
            self._resumption.note(info.checkpoint)  # the new dispatcher holds it again
        self._admission.adopt(ticket.key, ticket.call_id)
        call = LiveCall(ticket, spare, reusable, asyncio.get_running_loop().create_future())
        self._calls[ticket.call_id] = call
        self._spawn(self._supervise(call, begin=False))

    def _adopt_ended(self, actor: CallActorPort, info: ActorInfo) -> None:
        assert info.end is not None
        spare, reusable = self._returning(actor, info)
        self._spawn(self._recycle(spare, reusable=reusable,
                                  completed=_served_well(info.end.record)))

    async def _record_lost(self, record: CallRecord) -> None:
        await self._records.store(record)
        await self._report_end(record)

    # --- views -----------------------------------------------------------------------------
    def status(self) -> DispatchStatus:
        return DispatchStatus(
            active_calls=self._admission.active,
            max_concurrent_calls=self._admission.limit,
            warm_ready=self._pool.idle,
            warm_target=self._pool.target,
            accepted_total=self._admission.accepted_total,
            rejected_total=self._admission.rejected_total,
            call_actors_started_total=self._counts.started,
            call_actors_reused_total=self._counts.reused,
            call_actors_lost_total=self._counts.lost,
            prepare_failures_total=self._counts.prepare_failures,
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
        tasks = [*self._tasks, *self._refill.tasks(), *self._busy.workers]
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


class _Adoption:
    """``Adoption`` (``voice_ai.calls.recovery``) over a dispatcher's pool and live calls."""

    def __init__(self, dispatch: CallDispatch) -> None:
        self._d = dispatch

    def adopt_idle(self, actor: CallActorPort, info: ActorInfo) -> None:
        self._d._adopt_idle(actor, info)

    def adopt_busy(self, actor: CallActorPort, info: ActorInfo) -> None:
        self._d._adopt_busy(actor, info)

    def adopt_ended(self, actor: CallActorPort, info: ActorInfo) -> None:
        self._d._adopt_ended(actor, info)

    def is_live(self, call_id: str) -> bool:
        return call_id in self._d._calls

    async def record_lost(self, record: CallRecord) -> None:
        await self._d._record_lost(record)
