"""Policy above the pool port: which worker gets a stream, and what a lost worker costs.

- Worker choice: the least busy by this client's own count of open streams, round-robin
  among equals (each call's client counts its own streams; the pools are small).
- A worker lost before the stream produced anything (it crashed, its node went away) is
  waited for while the pool restarts it (``restart_wait_s``) and the stream is opened again
  with every input sent so far replayed. A stream that already produced output is never
  replayed (the caller would hear a repeat or get a second transcript): it fails as a
  ``TransientProviderError``, which the breakers count and the fallback handles.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from voice_ai.errors import TransientProviderError
from voice_ai.providers.ports import PoolChannel, PoolPort, WorkerLost
from voice_ai.providers.wire import OpenMessage, StreamInput, StreamOutput

__all__ = ["PoolStream", "ProviderPool"]

logger = logging.getLogger(__name__)
RESTART_WAIT_S = 60.0


class ProviderPool:
    def __init__(self, port: PoolPort, *, restart_wait_s: float = RESTART_WAIT_S) -> None:
        if port.size < 1:
            raise ValueError(f"{port.stage} pool of {port.provider} has no workers")
        self.port = port
        self.restart_wait_s = restart_wait_s
        self._busy = [0] * port.size
        self._rr = itertools.count()

    @property
    def provider(self) -> str:
        return self.port.provider

    @property
    def busy(self) -> list[int]:
        return list(self._busy)

    def pick(self) -> int:
        start = next(self._rr) % len(self._busy)
        order = [(start + k) % len(self._busy) for k in range(len(self._busy))]
        return min(order, key=lambda i: self._busy[i])

    def open(self, request: OpenMessage) -> PoolStream:
        return PoolStream(self, request)

    def _hold(self, worker: int, delta: int) -> None:
        self._busy[worker] += delta


_END = object()


class PoolStream:
    """One stream to some worker: ``send`` inputs (never blocks), iterate ``outputs()``.

    Inputs are delivered in order, batched while a delivery is in flight (one round trip at a
    time per stream), so a 20 ms audio frame rate does not turn into 50 calls a second when
    the worker is slow to acknowledge.
    """

    def __init__(self, pool: ProviderPool, request: OpenMessage) -> None:
        self._pool = pool
        self._request = request
        self._pending: list[StreamInput] = []
        self._sent: list[StreamInput] = []  # replayed if the worker is lost before any output
        self._wake = asyncio.Event()
        self._closed = False
        self._produced = False
        self._outputs: AsyncGenerator[StreamOutput, None] | None = None
        self.worker: int | None = None

    def send(self, item: StreamInput) -> None:
        if self._closed:
            return
        self._pending.append(item)
        self._wake.set()

    def outputs(self) -> AsyncIterator[StreamOutput]:
        """The stream's outputs (one iterator per stream)."""
        if self._outputs is None:
            self._outputs = self._run()
        return self._outputs

    async def aclose(self) -> None:
        """Stop the stream and give its worker slot back (also when abandoned mid-way)."""
        self._closed = True
        self._wake.set()
        if self._outputs is not None:
            await self._outputs.aclose()

    async def _run(self) -> AsyncGenerator[StreamOutput, None]:
        for attempt in (1, 2):
            worker = self._pool.pick()
            self.worker = worker
            self._pool._hold(worker, +1)
            try:
                async with contextlib.aclosing(self._attempt(worker)) as outputs:
                    async for out in outputs:
                        if not self._produced:
                            self._produced = True
                            self._sent = []  # never replayed from now on
                        yield out
                return
            except WorkerLost as e:
                if self._produced or attempt == 2:
                    raise TransientProviderError(
                        f"{self._pool.port.stage} worker {worker} of {self._pool.provider} lost"
                        + (" mid-stream" if self._produced else " twice"),
                        provider=self._pool.provider) from e
                logger.warning("pool worker lost, retrying after restart",
                               extra={"stage": self._pool.port.stage, "worker": worker})
                self._pending = self._sent + self._pending  # replayed on the new run
                self._sent = []
                self._wake.set()
                try:
                    await self._pool.port.wait_ready(worker, self._pool.restart_wait_s)
                except WorkerLost as gone:
                    raise TransientProviderError(str(gone), provider=self._pool.provider
                                                 ) from gone
            finally:
                self._pool._hold(worker, -1)

    async def _attempt(self, worker: int) -> AsyncGenerator[StreamOutput, None]:
        channel = await self._pool.port.open(worker, self._request)
        merged: asyncio.Queue[Any] = asyncio.Queue()
        tasks = [asyncio.create_task(self._pump(channel, merged)),
                 asyncio.create_task(self._read(channel, merged))]
        try:
            while (item := await merged.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await channel.aclose()

    async def _pump(self, channel: PoolChannel, merged: asyncio.Queue[Any]) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch, self._pending = self._pending, []
                if batch:
                    if not self._produced:
                        self._sent.extend(batch)
                    await channel.send(batch)
                if self._closed:
                    return
        except (WorkerLost, TransientProviderError) as e:
            merged.put_nowait(e)

    async def _read(self, channel: PoolChannel, merged: asyncio.Queue[Any]) -> None:
        try:
            async for out in channel.receive():
                merged.put_nowait(out)
        except Exception as e:
            merged.put_nowait(e)
        else:
            merged.put_nowait(_END)
