"""The cluster-wide breaker: pool actors in separate processes share one breaker through the
named registry, and 10 concurrent callers cannot push more requests into a failing Deepgram
than the breaker's minimum request count."""

from __future__ import annotations

import asyncio
import math
import uuid
from array import array
from collections.abc import AsyncIterator
from typing import Any

import pytest
import ray
from livekit.plugins import deepgram  # noqa: F401  # register on the main thread

from actors.breaker_registry import BreakerGate, ensure_breaker_registry
from voice_ai.config import Settings
from voice_ai.errors import ProviderError
from voice_ai.simulators import Fault, ProviderSimulators

pytestmark = [pytest.mark.ray, pytest.mark.integration]

PROVIDER = "deepgram"


def utterance() -> bytes:
    rate = 16_000
    tone = [int(6000 * math.sin(2 * math.pi * 300 * i / rate)) for i in range(int(0.5 * rate))]
    return array("h", tone + [0] * int(0.4 * rate)).tobytes()


@ray.remote(num_cpus=0)
class GatedSttPool:
    """What a Deepgram pool actor does around each request: ask, send, report."""

    def __init__(self, settings: Settings, registry_name: str) -> None:
        from voice_ai.providers.cloud import DeepgramEngine

        self.engine = DeepgramEngine(settings)
        self.gate = BreakerGate(ensure_breaker_registry(settings, name=registry_name))

    async def transcribe(self, pcm16: bytes) -> str:
        if not await self.gate.acquire(PROVIDER):
            return "refused"
        try:
            text = await self.engine.transcribe(pcm16, 16_000)
        except ProviderError as e:
            await self.gate.report(PROVIDER, False, str(e), e.retryable)
            return "failed"
        await self.gate.report(PROVIDER, True)
        return f"ok:{text}"

    async def snapshots(self) -> dict[str, dict[str, Any]]:
        return await self.gate.snapshots()


@pytest.fixture
async def sims() -> AsyncIterator[ProviderSimulators]:
    async with ProviderSimulators("zero") as running:
        yield running


def make_settings(sims: ProviderSimulators) -> Settings:
    return Settings(  # type: ignore[arg-type]
        **sims.settings_overrides(), provider_timeout_s=3.0, breaker_min_requests=5,
        circuit_breaker_threshold=0.5, breaker_window_s=30.0, breaker_recovery_timeout_s=1.0,
        breaker_half_open_probes=1,
    )


async def start_pools(settings: Settings, n: int = 2) -> tuple[str, list[Any]]:
    name = f"breaker_registry_{uuid.uuid4().hex[:8]}"
    ensure_breaker_registry(settings, name=name)
    pools = [GatedSttPool.remote(settings, name) for _ in range(n)]  # type: ignore[attr-defined]
    await asyncio.gather(*[p.snapshots.remote() for p in pools])  # wait until started
    return name, pools


async def burst(pools: list[Any], calls: int) -> list[str]:
    pcm = utterance()
    refs = [pools[i % len(pools)].transcribe.remote(pcm) for i in range(calls)]
    return list(await asyncio.gather(*refs))


async def test_two_actors_share_one_breaker(ray_session: None, sims: ProviderSimulators) -> None:
    settings = make_settings(sims)
    name, (a, b) = await start_pools(settings)
    gate = BreakerGate(ensure_breaker_registry(settings, name=name))
    for _ in range(5):  # failures reported on behalf of pool actor A ...
        assert await gate.acquire(PROVIDER)
        await gate.report(PROVIDER, False, "deepgram: HTTP 503", True)
    assert await b.transcribe.remote(utterance()) == "refused"  # ... stop pool actor B
    snap = (await b.snapshots.remote())[PROVIDER]
    assert (snap["state"], snap["state_value"], snap["last_error"]) == (
        "open", 1, "deepgram: HTTP 503"
    )
    assert sims.deepgram.requests == 0


async def test_ten_concurrent_callers_hit_at_most_min_requests_failures(
    ray_session: None, sims: ProviderSimulators
) -> None:
    settings = make_settings(sims)
    name, pools = await start_pools(settings)
    await sims.set_fault("deepgram", Fault.HTTP_500)

    results = await burst(pools, 10)
    assert sims.deepgram.faulted <= settings.breaker_min_requests
    assert results.count("failed") == sims.deepgram.faulted
    assert results.count("refused") == 10 - results.count("failed")
    snap = (await pools[0].snapshots.remote())[PROVIDER]
    assert snap["state"] == "open" and snap["total_failures"] <= 5

    # while open, nobody anywhere sends to Deepgram
    seen = sims.deepgram.requests
    assert await burst(pools, 10) == ["refused"] * 10
    assert sims.deepgram.requests == seen

    # Deepgram recovers; after the recovery timeout one probe closes the breaker
    await sims.set_fault("deepgram", Fault.NONE)
    await asyncio.sleep(settings.breaker_recovery_timeout_s + 0.1)
    assert await burst(pools, 1) == ["ok:hello world"]
    gate = BreakerGate(ensure_breaker_registry(settings, name=name))
    _, transitions = await gate.transitions_since(0)
    assert [t["to_state"] for t in transitions] == ["open", "half_open", "closed"]
    print(f"\nfailures before open: {sims.deepgram.faulted} of 10 concurrent calls")


async def test_healthy_burst_from_cold_is_served_not_refused(
    ray_session: None, sims: ProviderSimulators
) -> None:
    settings = make_settings(sims)
    _, pools = await start_pools(settings)
    results = await burst(pools, 10)
    assert results == ["ok:hello world"] * 10  # the throttled five waited for the first outcomes
