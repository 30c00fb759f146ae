"""``DurableRecords``: a call record reaches the store, or this node's spool; never nowhere.

``store(record)`` asks the writer (``StoreWriterPort``) up to ``attempts`` times within
``budget_s``, backing off between tries, whatever the problem (locked, disk full, bad schema,
writer unreachable: each may clear, e.g. a VACUUM ends or a restore is fixed). Then the record
goes to the spool (``RecordSpool``) and ``store`` returns ``Durability.SPOOLED``: the call can
end; the caller never hangs on the store. Every successful write checks the spool and
replays it in the background (one replay at a time), so the records come home as soon as
the store takes writes again. If even the spool cannot be written (its disk is full too), the
record waits in memory (bounded) and is retried at the next write or replay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from voice_ai.calls.ports import Durability
from voice_ai.records import CallRecord
from voice_ai.store.outcome import StoreProblem, WriteOutcome, classify_store_error
from voice_ai.store.spool import RecordSpool, ReplayResult

__all__ = ["DurableRecords", "SpoolObserver", "StoreWriterPort"]

logger = logging.getLogger("voice_ai.store")
MEMORY_BACKLOG = 10_000  # records kept in memory when even the spool cannot be written


class StoreWriterPort(Protocol):
    async def write_call(self, record: CallRecord) -> WriteOutcome:
        """One attempt. Store problems come back as a failed outcome; an exception raised here
        is classified with ``classify_store_error``."""
        ...


class SpoolObserver(Protocol):
    def spooled(self, pending: int, problem: StoreProblem) -> None: ...

    def replayed(self, replayed: int, pending: int) -> None: ...


class DurableRecords:
    def __init__(self, writer: StoreWriterPort, spool: RecordSpool, *, attempts: int = 4,
                 budget_s: float = 30.0, backoff_s: float = 0.25, backoff_max_s: float = 4.0,
                 observer: SpoolObserver | None = None,
                 scrub: Callable[[CallRecord], CallRecord] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if attempts < 1 or budget_s <= 0:
            raise ValueError("DurableRecords needs attempts >= 1 and budget_s > 0")
        self._writer = writer
        self.spool = spool
        self._attempts = attempts
        self._budget_s = budget_s
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._observer = observer
        self._scrub = scrub  # a spooled record is data at rest too: scrubbed like the store's
        self._sleep = sleep
        self._clock = clock
        self._backlog: list[CallRecord] = []
        self._replay: asyncio.Task[ReplayResult] | None = None
        self.problems: dict[StoreProblem, int] = {}

    async def store(self, record: CallRecord) -> Durability:
        deadline = self._clock() + self._budget_s
        delay = self._backoff_s
        outcome = WriteOutcome.failed(StoreProblem.OTHER, "not tried")
        for attempt in range(1, self._attempts + 1):
            outcome = await self._try(record)
            if outcome.ok:
                self._after_success()
                return Durability.STORED
            assert outcome.problem is not None
            self.problems[outcome.problem] = self.problems.get(outcome.problem, 0) + 1
            logger.warning("call record not stored yet", extra={
                "call_id": record.call_id, "problem": outcome.problem.value,
                "attempt": attempt, "error": outcome.detail[:200]})
            remaining = deadline - self._clock()
            if attempt == self._attempts or remaining <= 0:
                break
            await self._sleep(min(delay, remaining))
            delay = min(2 * delay, self._backoff_max_s)
        assert outcome.problem is not None
        self._spool(record, outcome.problem)
        return Durability.SPOOLED

    def spool_now(self, record: CallRecord) -> None:
        self._spool(record, StoreProblem.UNAVAILABLE)

    async def replay(self) -> ReplayResult:
        """Send the spool (and the memory backlog) to the store; what it refuses stays."""
        self._flush_backlog()

        async def write(record: CallRecord) -> bool:
            return (await self._try(record)).ok

        result = await self.spool.replay(write)
        if result.replayed:
            logger.warning("spooled call records stored", extra={
                "replayed": result.replayed, "remaining": result.remaining})
        if self._observer is not None and not result.skipped:
            self._observer.replayed(result.replayed, result.remaining)
        return result

    def replay_in_background(self) -> None:
        if self._replay is None or self._replay.done():
            self._replay = asyncio.create_task(self.replay())

    async def _try(self, record: CallRecord) -> WriteOutcome:
        try:
            return await self._writer.write_call(record)
        except Exception as e:
            return WriteOutcome.failed(classify_store_error(e), f"{type(e).__name__}: {e}")

    def _after_success(self) -> None:
        if self._backlog or self.spool.pending() > 0:
            self.replay_in_background()

    def _spool(self, record: CallRecord, problem: StoreProblem) -> None:
        if self._scrub is not None:
            record = self._scrub(record)
        try:
            pending = self.spool.append(record)
        except OSError as e:
            if len(self._backlog) < MEMORY_BACKLOG:
                self._backlog.append(record)
            logger.error("call record could not be spooled, kept in memory", extra={
                "call_id": record.call_id, "error": f"{type(e).__name__}: {e}",
                "in_memory": len(self._backlog)})
            pending = self.spool.pending() + len(self._backlog)
        else:
            logger.error("call record spooled: the store did not take it", extra={
                "call_id": record.call_id, "problem": problem.value, "spooled": pending,
                "spool": str(self.spool.path)})
        if self._observer is not None:
            self._observer.spooled(pending, problem)

    def _flush_backlog(self) -> None:
        while self._backlog:
            try:
                self.spool.append(self._backlog[0])
            except OSError:
                return
            self._backlog.pop(0)
