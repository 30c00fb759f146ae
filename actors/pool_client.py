"""``PoolPort`` over Ray: a provider pool's workers are named actors (``stt-whisper-0`` ...).

A stream is one streaming-generator call (``serve``) for the outputs and small ``push`` calls
for the inputs; a worker that died surfaces as ``WorkerLost``, a provider's error as the
``ProviderError`` the worker raised. Policy (which worker, retry after a restart, fallback) is
``voice_ai.providers.pool`` and the stages, not here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from actors.names import worker_name
from voice_ai.errors import ProviderError
from voice_ai.providers.ports import WorkerLost
from voice_ai.providers.wire import OpenMessage, StreamInput, StreamOutput

__all__ = ["RayPoolChannel", "RayPoolPort"]

_LOST = (RayActorError, ActorUnavailableError)
POLL_S = 0.2


def _cause(e: RayTaskError) -> BaseException:
    """The worker's own error (a ProviderError, with its status and class) instead of Ray's
    wrapper, so breakers and fallbacks see what happened."""
    cause = e.cause
    return cause if isinstance(cause, ProviderError) else e


class RayPoolPort:
    def __init__(self, stage: str, provider: str, handles: list[ActorHandle[Any]]) -> None:
        if not handles:
            raise ValueError(f"{stage} pool of {provider} has no workers")
        self._stage, self._provider, self._handles = stage, provider, handles

    @classmethod
    def named(cls, stage: str, provider: str, size: int, namespace: str) -> RayPoolPort:
        return cls(stage, provider, [ray.get_actor(worker_name(stage, provider, i),
                                                   namespace=namespace) for i in range(size)])

    @property
    def stage(self) -> str:
        return self._stage

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def size(self) -> int:
        return len(self._handles)

    async def open(self, worker: int, request: OpenMessage) -> RayPoolChannel:
        handle = self._handles[worker]
        stream_id = uuid.uuid4().hex
        try:
            outputs: Any = handle.serve.options(num_returns="streaming").remote(stream_id,
                                                                               request)
        except _LOST as e:
            raise WorkerLost(str(e)) from e
        return RayPoolChannel(handle, stream_id, outputs)

    async def wait_ready(self, worker: int, timeout_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                await self._handles[worker].info.remote()
                return
            except _LOST:
                if asyncio.get_running_loop().time() > deadline:
                    raise WorkerLost(f"{self._stage} worker {worker} of {self._provider} did "
                                     f"not come back within {timeout_s:g}s") from None
                await asyncio.sleep(POLL_S)

    async def sample_rate(self) -> int:
        info: dict[str, Any] = await self._handles[0].info.remote()
        return int(info.get("sample_rate") or 0)


class RayPoolChannel:
    def __init__(self, handle: ActorHandle[Any], stream_id: str, outputs: Any) -> None:
        self._handle, self._id, self._outputs = handle, stream_id, outputs
        self._closed = False

    async def send(self, items: Sequence[StreamInput]) -> None:
        try:
            await self._handle.push.remote(self._id, list(items))
        except _LOST as e:
            raise WorkerLost(str(e)) from e

    async def receive(self) -> AsyncIterator[StreamOutput]:
        try:
            async for ref in self._outputs:
                yield await ref
        except RayTaskError as e:
            raise _cause(e) from None
        except _LOST as e:
            raise WorkerLost(str(e)) from e

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._handle.cancel.remote(self._id)  # fire and forget: the worker stops the stream
