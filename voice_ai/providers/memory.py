"""An in-memory ``PoolPort``: provider hosts in this process, for tests and the no-Ray path.

Workers can be killed and restarted (``kill`` / ``restart``), which is what a crashed pool
actor looks like to a call: open streams of a killed worker fail with ``WorkerLost``, new
opens too, and ``wait_ready`` returns once it is restarted (or gives up after its timeout,
on the event loop's clock: tests use short timeouts, never seconds of sleep).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any

from voice_ai.providers.host import ProviderHost
from voice_ai.providers.ports import WorkerLost
from voice_ai.providers.wire import OpenMessage, StreamInput, StreamOutput

__all__ = ["MemoryChannel", "MemoryPool"]

_END = object()


class MemoryPool:
    def __init__(self, hosts: Sequence[ProviderHost]) -> None:
        if not hosts:
            raise ValueError("a pool needs at least one worker")
        self._hosts = list(hosts)
        self._alive = [asyncio.Event() for _ in hosts]
        for alive in self._alive:
            alive.set()
        self._channels: list[set[MemoryChannel]] = [set() for _ in hosts]
        self._ids = itertools.count()
        self.opened: list[OpenMessage] = []  # every request opened, for tests to inspect

    @property
    def stage(self) -> str:
        return self._hosts[0].stage

    @property
    def provider(self) -> str:
        return self._hosts[0].name

    @property
    def size(self) -> int:
        return len(self._hosts)

    def host(self, worker: int) -> ProviderHost:
        return self._hosts[worker]

    async def open(self, worker: int, request: OpenMessage) -> MemoryChannel:
        if not self._alive[worker].is_set():
            raise WorkerLost(f"worker {worker} is down")
        self.opened.append(request)
        channel = MemoryChannel(self, worker, f"s{next(self._ids)}", request)
        self._channels[worker].add(channel)
        return channel

    async def wait_ready(self, worker: int, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._alive[worker].wait(), timeout_s)
        except TimeoutError:
            raise WorkerLost(f"worker {worker} did not come back within {timeout_s:g}s") from None

    async def sample_rate(self) -> int:
        return self._hosts[0].stats().sample_rate

    # --- faults ------------------------------------------------------------------------------
    def kill(self, worker: int) -> None:
        """The worker's process dies: its streams fail with ``WorkerLost``."""
        self._alive[worker].clear()
        for channel in list(self._channels[worker]):
            channel.lose()

    def restart(self, worker: int, host: ProviderHost | None = None) -> None:
        if host is not None:
            self._hosts[worker] = host
        self._alive[worker].set()

    def _forget(self, channel: MemoryChannel) -> None:
        self._channels[channel.worker].discard(channel)


class MemoryChannel:
    def __init__(self, pool: MemoryPool, worker: int, stream_id: str,
                 request: OpenMessage) -> None:
        self.pool = pool
        self.worker = worker
        self._id = stream_id
        self._request = request
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._lost = False
        self._task = asyncio.create_task(self._serve())

    @property
    def _host(self) -> ProviderHost:
        return self.pool.host(self.worker)

    async def _serve(self) -> None:
        try:
            async for out in self._host.serve(self._id, self._request):
                self._out.put_nowait(out)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._out.put_nowait(e)
        else:
            self._out.put_nowait(_END)

    def lose(self) -> None:
        self._lost = True
        self._task.cancel()
        self._out.put_nowait(WorkerLost(f"worker {self.worker} died"))

    async def send(self, items: Sequence[StreamInput]) -> None:
        if self._lost:
            raise WorkerLost(f"worker {self.worker} died")
        await asyncio.sleep(0)  # a delivery is never synchronous across a process
        self._host.push(self._id, items)

    async def receive(self) -> AsyncIterator[StreamOutput]:
        while (item := await self._out.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item

    async def aclose(self) -> None:
        if not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._host.cancel(self._id)
        self.pool._forget(self)
