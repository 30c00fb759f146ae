"""The client a call uses to reach a provider pool. It is itself an engine (same protocols).

Choice of worker: least busy by this client's own in-flight count, round-robin among equals.
A worker that died (crash, node loss) is waited for while Ray restarts it, and the request is
sent once more; a stream that already yielded data is not replayed (the caller would hear a
repeat), it fails as a transient provider error instead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from actors.names import worker_name
from voice_ai.errors import ProviderError, TransientProviderError
from voice_ai.providers.engines import ChatMessage

logger = logging.getLogger(__name__)

_WORKER_LOST = (RayActorError, ActorUnavailableError)
RESTART_WAIT_S = 60.0


def _provider_error(e: RayTaskError) -> BaseException:
    """The engine's own error (a ProviderError) instead of Ray's wrapper, so breakers and
    fallbacks see the status code and whether it is transient."""
    cause = e.cause
    return cause if isinstance(cause, ProviderError) else e


class PoolClient:
    def __init__(self, stage: str, provider: str, handles: list[ActorHandle],
                 sample_rate: int = 0) -> None:
        if not handles:
            raise ValueError(f"{stage} pool for {provider} has no workers")
        self.stage = stage
        self.name = provider
        self.served_by = provider
        self.sample_rate = sample_rate
        self._handles = handles
        self._busy = [0] * len(handles)
        self._rr = itertools.count()

    @classmethod
    async def connect(cls, stage: str, provider: str, size: int, namespace: str) -> PoolClient:
        handles = [ray.get_actor(worker_name(stage, provider, i), namespace=namespace)
                   for i in range(size)]
        info = await handles[0].info.remote()
        return cls(stage, provider, handles, sample_rate=int(info.get("sample_rate") or 0))

    def _pick(self) -> int:
        start = next(self._rr)
        order = [(start + k) % len(self._handles) for k in range(len(self._handles))]
        return min(order, key=lambda i: self._busy[i])

    async def _wait_restarted(self, i: int) -> None:
        deadline = asyncio.get_running_loop().time() + RESTART_WAIT_S
        while True:
            try:
                await self._handles[i].info.remote()
                return
            except _WORKER_LOST:
                if asyncio.get_running_loop().time() > deadline:
                    raise TransientProviderError(
                        f"{self.stage} worker {i} did not come back within {RESTART_WAIT_S:g}s",
                        provider=self.name) from None
                await asyncio.sleep(0.2)

    async def _call(self, method: str, *args: Any) -> Any:
        i = self._pick()
        self._busy[i] += 1
        try:
            for attempt in (1, 2):
                try:
                    return await getattr(self._handles[i], method).remote(*args)
                except RayTaskError as e:
                    raise _provider_error(e) from None
                except _WORKER_LOST as e:
                    if attempt == 2:
                        raise TransientProviderError(f"{self.stage} worker lost twice",
                                                     provider=self.name) from e
                    logger.warning("pool worker lost, retrying after restart",
                                   extra={"stage": self.stage, "worker": i})
                    await self._wait_restarted(i)
        finally:
            self._busy[i] -= 1

    async def _stream(self, method: str, *args: Any) -> AsyncIterator[Any]:
        i = self._pick()
        self._busy[i] += 1
        try:
            for attempt in (1, 2):
                yielded = False
                try:
                    gen = getattr(self._handles[i], method).options(
                        num_returns="streaming").remote(*args)
                    async for ref in gen:
                        item = await ref
                        yielded = True
                        yield item
                    return
                except RayTaskError as e:
                    raise _provider_error(e) from None
                except _WORKER_LOST as e:
                    if yielded or attempt == 2:
                        raise TransientProviderError(
                            f"{self.stage} worker lost mid-stream", provider=self.name) from e
                    logger.warning("pool worker lost, retrying after restart",
                                   extra={"stage": self.stage, "worker": i})
                    await self._wait_restarted(i)
        finally:
            self._busy[i] -= 1

    # --- engine protocols -------------------------------------------------------------------
    async def transcribe(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        text: str = await self._call("transcribe", pcm16, sample_rate, language)
        return text

    def generate(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        return self._stream("generate", messages)

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._stream("synthesize", text)
