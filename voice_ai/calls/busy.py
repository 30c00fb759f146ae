"""The busy line: callers over MAX_CONCURRENT_CALLS hear a short message and are recorded.

Bounded on purpose: a burst of rejections must not become thousands of tasks inside the
dispatcher. A fixed number of workers (``concurrency``) take rejected calls from a queue of at
most ``queue_size``; each plays the busy message into the caller's room (within
``play_timeout_s``) and stores the rejected call's record. When the queue is full, the record
goes straight to the local spool (never dropped) and the message is skipped (``overflowed``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from voice_ai.calls.deadline import within
from voice_ai.calls.ports import BusyPlayer, RecordSink
from voice_ai.records import CallRecord

__all__ = ["BusyLine", "RejectedCall"]

logger = logging.getLogger("voice_ai.dispatcher")


@dataclass(frozen=True, slots=True)
class RejectedCall:
    record: CallRecord  # outcome rejected, end reason rejected_busy
    room: str | None  # None: no one to play the message to (simulated calls)


class BusyLine:
    def __init__(self, records: RecordSink, player: BusyPlayer | None, *, concurrency: int,
                 queue_size: int, play_timeout_s: float,
                 on_overflow: Callable[[CallRecord], None] | None = None) -> None:
        if concurrency < 1 or queue_size < 1:
            raise ValueError("busy line needs concurrency >= 1 and queue_size >= 1")
        self._records = records
        self._player = player
        self._concurrency = concurrency
        self._queue: asyncio.Queue[RejectedCall] = asyncio.Queue(maxsize=queue_size)
        self._play_timeout_s = play_timeout_s
        self._on_overflow = on_overflow
        self._workers: list[asyncio.Task[None]] = []
        self.played = 0
        self.overflowed = 0

    def submit(self, rejected: RejectedCall) -> bool:
        """Queue a rejected call; False when the queue is full (record spooled, no message)."""
        self._start_workers()
        try:
            self._queue.put_nowait(rejected)
            return True
        except asyncio.QueueFull:
            self.overflowed += 1
            self._records.spool_now(rejected.record)
            logger.warning("busy line full: rejected call recorded without the busy message",
                           extra={"call_id": rejected.record.call_id})
            if self._on_overflow is not None:
                self._on_overflow(rejected.record)
            return False

    @property
    def workers(self) -> list[asyncio.Task[None]]:
        return list(self._workers)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def drain(self) -> None:
        """Wait until every queued rejection is handled (tests, shutdown)."""
        await self._queue.join()

    def _start_workers(self) -> None:
        if not self._workers:
            self._workers = [asyncio.create_task(self._work())
                             for _ in range(self._concurrency)]

    async def _work(self) -> None:
        while True:
            rejected = await self._queue.get()
            try:
                await self._handle(rejected)
            except Exception:  # a worker must survive anything one call throws at it
                logger.exception("busy line failed on a rejected call",
                                 extra={"call_id": rejected.record.call_id})
            finally:
                self._queue.task_done()

    async def _handle(self, rejected: RejectedCall) -> None:
        if rejected.room is not None and self._player is not None:
            try:
                await within(self._player.play(rejected.room), self._play_timeout_s,
                             "busy message")
                self.played += 1
            except Exception as e:  # the caller may be gone already; the record still counts
                logger.warning("busy message not played", extra={
                    "call_id": rejected.record.call_id, "error": type(e).__name__})
        await self._records.store(rejected.record)
