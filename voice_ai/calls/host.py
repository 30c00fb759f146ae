"""``CallHost``: the life of calls inside one call actor, independent of the dispatcher.

``begin`` starts the call and returns; the call then runs to its end even if the dispatcher
that started it dies. When it ends, the host makes the record durable itself (``RecordSink``:
the store, or this node's spool), then reports ``CALL_END`` to the telemetry hub, then wakes
whoever waits in ``wait_end`` (the dispatcher, or the one that replaced it). ``info`` tells a
new dispatcher what this actor is doing, so it can be adopted.

``reset`` (the dispatcher puts the actor back in the warm pool) then collects the ended call's
garbage and returns the freed heap to the OS (``voice_ai.calls.memory``).

A call handed over to another call actor (the runner raises ``CallHandedOver``: a drain) is
neither stored nor reported here: the actor that ends the call does both. The host keeps the
call's latest checkpoint (``note_checkpoint``) for ``info``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from voice_ai.calls.deadline import within
from voice_ai.calls.memory import release_freed_memory
from voice_ai.calls.ports import (
    ActorInfo,
    ActorPhase,
    CallEnd,
    CallTicket,
    Durability,
    RecordSink,
    ResumeReport,
)
from voice_ai.pipeline.checkpoint import CallHandedOver, SavedCheckpoint
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallRecord, EndReason

__all__ = ["CallEndReporter", "CallHost", "CallHostBusy", "CallRunner"]

logger = logging.getLogger("voice_ai.call")


class CallRunner(Protocol):
    async def run_call(self, spec: CallSpec) -> CallRecord:
        """Run one call to its end and return its record."""
        ...


class CallEndReporter(Protocol):
    async def call_ended(self, record: CallRecord) -> None: ...


class CallHostBusy(RuntimeError):
    """``begin`` while a call is running or not yet reset, or ``reset`` during a call."""


class CallHost:
    def __init__(self, name: str, node_id: str, pid: int, records: RecordSink,
                 reporter: CallEndReporter, *, report_timeout_s: float = 5.0,
                 wall_clock: Callable[[], float] = time.time,
                 release_memory: Callable[[], object] = release_freed_memory) -> None:
        self.name = name
        self._node_id = node_id
        self._pid = pid
        self._records = records
        self._reporter = reporter
        self._report_timeout_s = report_timeout_s
        self._wall = wall_clock
        self._release_memory = release_memory
        self._phase = ActorPhase.IDLE
        self._ticket: CallTicket | None = None
        self._end: CallEnd | None = None
        self._ended: asyncio.Future[CallEnd] | None = None
        self._task: asyncio.Task[None] | None = None
        self._checkpoint: SavedCheckpoint | None = None
        self._listening: asyncio.Future[float] | None = None
        self.handover = asyncio.Event()  # the running call hands over at its next turn end
        self.calls_served = 0

    @property
    def phase(self) -> ActorPhase:
        return self._phase

    def begin(self, ticket: CallTicket, runner: CallRunner, *,
              prepare: Callable[[], Awaitable[object]] | None = None) -> None:
        """Take the call and start it in the background. ``prepare`` (if given) runs first,
        inside the call: a cold actor that fails to get ready records the call as failed."""
        if self._phase is not ActorPhase.IDLE:
            raise CallHostBusy(f"{self.name} is {self._phase.value}, cannot begin "
                               f"{ticket.call_id}")
        self._phase = ActorPhase.BUSY
        self._ticket = ticket
        self._end = None
        resume = ticket.spec.resume
        self._checkpoint = resume.checkpoint if resume is not None else None
        self._ended = asyncio.get_running_loop().create_future()
        self._listening = asyncio.get_running_loop().create_future()
        self.handover = asyncio.Event()
        self.calls_served += 1
        self._task = asyncio.create_task(self._run(ticket, runner, prepare))

    async def _run(self, ticket: CallTicket, runner: CallRunner,
                   prepare: Callable[[], Awaitable[object]] | None) -> None:
        try:
            if prepare is not None:
                await prepare()
            record = await runner.run_call(ticket.spec)
        except CallHandedOver as e:  # another call actor carries the call on and records it
            self._ended_with(CallEnd(e.record, Durability.HANDED_OVER))
            return
        except Exception as e:  # the record must exist whatever the pipeline did
            logger.exception("call failed", extra={"call_id": ticket.call_id})
            record = CallRecord(call_id=ticket.call_id, direction=ticket.direction,
                                started_at=ticket.spec.admitted_at, ended_at=self._wall(),
                                end_reason=EndReason.ERROR,
                                caller_masked=ticket.spec.caller_masked,
                                warm_start=ticket.spec.warm, error=f"{type(e).__name__}: {e}")
        durability = await self._records.store(record)
        try:  # CALL_END only once the record is durable
            await within(self._reporter.call_ended(record), self._report_timeout_s,
                         "telemetry hub")
        except Exception as e:  # the hub reconciles its gauges; the record is safe
            logger.warning("CALL_END not reported", extra={
                "call_id": record.call_id, "error": f"{type(e).__name__}: {e}"})
        self._ended_with(CallEnd(record, durability))

    def _ended_with(self, end: CallEnd) -> None:
        self._end = end
        self._phase = ActorPhase.ENDED
        assert self._ended is not None
        self._ended.set_result(end)

    def listening(self, at: float) -> None:
        """The running call listens to its caller (unix s): ``wait_listening`` returns."""
        if self._listening is not None and not self._listening.done():
            self._listening.set_result(at)

    async def wait_listening(self, call_id: str) -> ResumeReport:
        """Once the call ``call_id`` listens to its caller (or ended before that: ``error``)."""
        if self._ticket is None or self._ticket.call_id != call_id or self._ended is None:
            raise KeyError(f"no call {call_id} on {self.name}")
        assert self._listening is not None
        resume = self._ticket.spec.resume
        restored = (resume.checkpoint.turn_count
                    if resume is not None and resume.checkpoint is not None else 0)
        waits: list[asyncio.Future[Any]] = [self._listening, self._ended]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if self._listening.done():
            return ResumeReport(self._node_id, self._listening.result(), restored)
        record = self._ended.result().record
        return ResumeReport(self._node_id, None, restored,
                            error=record.error or record.end_reason.value)

    def hand_over(self, call_id: str) -> bool:
        """Ask the running call ``call_id`` to hand over at its next turn boundary."""
        if not self.running(call_id):
            return False
        self.handover.set()
        return True

    def note_checkpoint(self, saved: SavedCheckpoint) -> bool:
        """Keep ``saved`` if it is the running call's and newer than the one held."""
        if self._ticket is None or saved.call_id != self._ticket.call_id:
            return False
        if not saved.newer_than(self._checkpoint):
            return False
        self._checkpoint = saved
        return True

    async def wait_end(self, call_id: str) -> CallEnd:
        if self._ticket is None or self._ticket.call_id != call_id or self._ended is None:
            raise LookupError(f"{self.name} is not running call {call_id}")
        return await asyncio.shield(self._ended)

    def reset(self) -> None:
        if self._phase is ActorPhase.BUSY:
            raise CallHostBusy(f"{self.name} is in call {self._ticket and self._ticket.call_id}")
        self._phase = ActorPhase.IDLE
        self._ticket = None
        self._end = None
        self._checkpoint = None
        self._task = None
        self._release_soon()

    def _release_soon(self) -> None:
        """Once the reset has answered: collect the ended call's garbage (an ``AgentSession``
        and its streams are reference cycles) and hand the freed heap back to the OS
        (``voice_ai.calls.memory``), so a long-lived call actor's RSS does not creep up call
        after call (the soak, docs/resilience.md)."""
        try:
            asyncio.get_running_loop().call_soon(self._release)
        except RuntimeError:  # no loop (a synchronous caller): now
            self._release()

    def _release(self) -> None:
        if self._phase is ActorPhase.IDLE:  # not if the next call has begun meanwhile
            gc.collect()
            self._release_memory()

    def running(self, call_id: str) -> bool:
        return (self._phase is ActorPhase.BUSY and self._ticket is not None
                and self._ticket.call_id == call_id)

    def info(self) -> ActorInfo:
        return ActorInfo(name=self.name, node_id=self._node_id, pid=self._pid,
                         calls_served=self.calls_served, phase=self._phase,
                         ticket=self._ticket, end=self._end, checkpoint=self._checkpoint)
