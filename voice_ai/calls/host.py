"""``CallHost``: the life of calls inside one call actor, independent of the dispatcher.

``begin`` starts the call and returns; the call then runs to its end even if the dispatcher
that started it dies. When it ends, the host makes the record durable itself (``RecordSink``:
the store, or this node's spool), then reports ``CALL_END`` to the telemetry hub, then wakes
whoever waits in ``wait_end`` (the dispatcher, or the one that replaced it). ``info`` tells a
new dispatcher what this actor is doing, so it can be adopted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from voice_ai.calls.deadline import within
from voice_ai.calls.ports import (
    ActorInfo,
    ActorPhase,
    CallEnd,
    CallTicket,
    RecordSink,
)
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
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._node_id = node_id
        self._pid = pid
        self._records = records
        self._reporter = reporter
        self._report_timeout_s = report_timeout_s
        self._wall = wall_clock
        self._phase = ActorPhase.IDLE
        self._ticket: CallTicket | None = None
        self._end: CallEnd | None = None
        self._ended: asyncio.Future[CallEnd] | None = None
        self._task: asyncio.Task[None] | None = None
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
        self._ended = asyncio.get_running_loop().create_future()
        self.calls_served += 1
        self._task = asyncio.create_task(self._run(ticket, runner, prepare))

    async def _run(self, ticket: CallTicket, runner: CallRunner,
                   prepare: Callable[[], Awaitable[object]] | None) -> None:
        try:
            if prepare is not None:
                await prepare()
            record = await runner.run_call(ticket.spec)
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
        self._end = CallEnd(record, durability)
        self._phase = ActorPhase.ENDED
        assert self._ended is not None
        self._ended.set_result(self._end)

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

    def info(self) -> ActorInfo:
        return ActorInfo(name=self.name, node_id=self._node_id, pid=self._pid,
                         calls_served=self.calls_served, phase=self._phase,
                         ticket=self._ticket, end=self._end)
