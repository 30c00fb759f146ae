"""The telemetry hub: one named actor on the head node that every actor on every node reports to.

It holds the cluster's metrics registry (one scrape of ``/metrics`` shows the whole cluster) and
polls the provider pools and call actors for queue lengths, CPU and memory. Methods only
delegate to ``VoiceMetrics`` and the log helpers in ``voice_ai.observability``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from actors.names import DISPATCHER, NAMESPACE, worker_name
from voice_ai.config import Settings
from voice_ai.observability.metrics import VoiceMetrics
from voice_ai.records import CallRecord, TurnTimings

logger = logging.getLogger("voice_ai.telemetry")
POLL_INTERVAL_S = 2.0


@ray.remote(max_restarts=-1, max_task_retries=-1)
class TelemetryHub:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._metrics = VoiceMetrics()
        self._metrics.max_concurrent_calls.set(settings.max_concurrent_calls)
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever())

    # --- events from dispatcher and call actors ---------------------------------------------
    def call_started(self, direction: str) -> None:
        self._metrics.call_started(direction)

    def call_rejected(self) -> None:
        self._metrics.call_rejected()

    def call_ended(self, record: CallRecord) -> None:
        self._metrics.call_ended(record)

    def turn(self, turn: TurnTimings) -> None:
        self._metrics.observe_turn(turn)

    def error(self, component: str) -> None:
        self._metrics.error(component)

    def breaker(self, provider: str, state: str, transitioned: bool) -> None:
        self._metrics.set_breaker(provider, state, transitioned=transitioned)

    def metrics_text(self) -> bytes:
        return self._metrics.render()

    # --- polling ----------------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:
                logger.exception("telemetry poll failed")
            await asyncio.sleep(POLL_INTERVAL_S)

    async def poll_once(self) -> None:
        s = self._settings
        pools = {
            "stt": (s.stt_provider, s.stt_pool_size),
            "llm": (s.llm_provider, s.llm_pool_size),
            "tts": (s.tts_provider, s.tts_pool_size),
        }
        for stage, (provider, size) in pools.items():
            infos = await _gather_infos(
                [worker_name(stage, provider, i) for i in range(size)], "info"
            )
            live = [i for i in infos if i is not None]
            self._metrics.set_pool(f"{stage}_{provider}",
                                   queue_length=sum(i["in_flight"] for i in live),
                                   workers=len(live))
            for info in live:
                self._metrics.set_process(f"{stage}_pool", info["node_id"][:12],
                                          cpu_percent=info["cpu_percent"],
                                          rss_bytes=info["rss_bytes"])
        try:
            dispatcher = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
            for component, stats in (await dispatcher.process_stats.remote()).items():
                self._metrics.set_process(component[0], component[1],
                                          cpu_percent=stats["cpu_percent"],
                                          rss_bytes=stats["rss_bytes"])
        except ValueError:  # dispatcher not started yet
            pass


async def _gather_infos(names: list[str], method: str) -> list[dict[str, Any] | None]:
    async def one(name: str) -> dict[str, Any] | None:
        try:
            handle = ray.get_actor(name, namespace=NAMESPACE)
            result: dict[str, Any] = await asyncio.wait_for(
                getattr(handle, method).remote(), timeout=2.0)
            return result
        except Exception:
            return None

    return list(await asyncio.gather(*(one(n) for n in names)))
