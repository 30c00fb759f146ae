"""The port to a provider pool: open a stream to one worker, send, receive.

A pool is a few worker processes that each host one provider (faster-whisper, llama.cpp,
Piper, or a cloud plugin). A call reaches them only through ``PoolPort``; ``actors/`` implements
it with Ray (a streaming generator out, batched pushes in), ``voice_ai.providers.memory`` with
provider hosts in the same process for tests. Everything above the port (which worker, retry
after a restart, breakers, fallback) is policy in ``voice_ai`` and sees only this:

    channel = await port.open(worker, LlmRequest(...))    # starts the stream on that worker
    await channel.send([TextIn("Hello"), Flush()])        # inputs, in order
    async for out in channel.receive(): ...               # outputs until the stream ends
    await channel.aclose()

A worker that died (its process crashed, its node is gone) raises ``WorkerLost`` from any of
these; ``wait_ready`` returns once the pool has restarted it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from voice_ai.providers.wire import OpenMessage, StreamInput, StreamOutput

__all__ = ["PoolChannel", "PoolPort", "WorkerLost"]


class WorkerLost(Exception):
    """The worker serving a stream is gone (crashed, node lost, restarting)."""


class PoolChannel(Protocol):
    async def send(self, items: Sequence[StreamInput]) -> None:
        """Deliver inputs to the worker's stream, in order (returns once delivered)."""
        ...

    def receive(self) -> AsyncIterator[StreamOutput]:
        """The stream's outputs; ends when the worker's stream ends, raises its error."""
        ...

    async def aclose(self) -> None:
        """Stop the stream on the worker (idempotent)."""
        ...


class PoolPort(Protocol):
    @property
    def stage(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def size(self) -> int:
        """Number of workers; ``open`` takes an index in ``range(size)``."""
        ...

    async def open(self, worker: int, request: OpenMessage) -> PoolChannel: ...

    async def wait_ready(self, worker: int, timeout_s: float) -> None:
        """Return once ``worker`` answers again; ``WorkerLost`` after ``timeout_s``."""
        ...

    async def sample_rate(self) -> int:
        """The provider's output sample rate (TTS), 0 for other stages."""
        ...
