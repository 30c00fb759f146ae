"""A cloud provider behind its cluster-wide breaker, with the local pool as the fallback.

It is an engine like ``PoolClient`` (same protocols), so calls do not know it is there:

- the breaker registry is asked before every request (``BreakerGate.acquire``): when the
  provider's breaker is open, the request goes straight to the local pool;
- a request the provider fails is retried once on the local pool, so the caller hears an
  answer rather than silence; the failure is reported (transient ones count in the breaker,
  permanent ones such as 401 are shown as needing a person);
- a stream that already produced output is not replayed (the caller would hear it twice).

``served_by`` says which provider served the latest request (recorded on the turn).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from actors.breaker_registry import BreakerGate
from actors.pool_client import PoolClient
from voice_ai.errors import ProviderError
from voice_ai.providers.audio import PcmResampler
from voice_ai.providers.engines import ChatMessage
from voice_ai.resilience.classify import is_transient

logger = logging.getLogger("voice_ai.fallback")
T = TypeVar("T")


class FallbackClient:
    def __init__(self, stage: str, primary: PoolClient, fallback: PoolClient,
                 gate: BreakerGate) -> None:
        self.stage = stage
        self.name = primary.name
        self.served_by = primary.name
        self.sample_rate = primary.sample_rate
        self._primary = primary
        self._fallback = fallback
        self._gate = gate

    async def _failed(self, e: BaseException) -> None:
        transient = is_transient(e)
        logger.warning("provider failed, using fallback",
                       extra={"stage": self.stage, "provider": self.name,
                              "fallback": self._fallback.name, "transient": transient,
                              "error": type(e).__name__})
        await self._gate.report(self.name, ok=False, error=f"{type(e).__name__}: {e}"[:300],
                                transient=transient)

    async def _unary(self, call: Callable[[PoolClient], Awaitable[T]]) -> T:
        if await self._gate.acquire(self.name):
            try:
                result = await call(self._primary)
            except (ProviderError, TimeoutError, ConnectionError) as e:
                await self._failed(e)
            else:
                await self._gate.report(self.name, ok=True)
                self.served_by = self._primary.name
                return result
        self.served_by = self._fallback.name
        return await call(self._fallback)

    async def _streamed(self, open_stream: Callable[[PoolClient], AsyncIterator[Any]],
                        convert: Callable[[Any], Any] | None = None) -> AsyncIterator[Any]:
        if await self._gate.acquire(self.name):
            yielded = False
            try:
                async for item in open_stream(self._primary):
                    yielded = True
                    self.served_by = self._primary.name
                    yield item
            except (ProviderError, TimeoutError, ConnectionError) as e:
                await self._failed(e)
                if yielded:
                    raise
            else:
                await self._gate.report(self.name, ok=True)
                return
        self.served_by = self._fallback.name
        async for item in open_stream(self._fallback):
            yield convert(item) if convert is not None else item

    # --- engine protocols -------------------------------------------------------------------
    async def transcribe(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        return await self._unary(lambda c: c.transcribe(pcm16, sample_rate, language))

    def generate(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        return self._streamed(lambda c: c.generate(messages))

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if self._fallback.sample_rate == self.sample_rate:
            return self._streamed(lambda c: c.synthesize(text))
        # the fallback voice speaks at another rate: resample to what this call's TTS declared
        resampler = PcmResampler(self._fallback.sample_rate, self.sample_rate)
        return self._streamed(lambda c: c.synthesize(text), resampler.push)
