"""The telemetry hub: one named actor that every actor on every node reports to.

It holds the cluster's metrics registry (one scrape of ``/metrics`` shows the whole cluster),
owns the runbook's log files (records from every process arrive through ``ingest_logs``), and
polls the pools, call actors and breaker registry for queue lengths, CPU, memory, component
health and breaker transitions. Methods only delegate to ``voice_ai.observability``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import ray

from actors.names import BREAKER_REGISTRY, DISPATCHER
from actors.pool_layout import pool_layout
from actors.store_writer import StoreClient
from voice_ai.config import Settings
from voice_ai.observability.audit import (
    audit_call_end,
    audit_call_rejected,
    audit_call_start,
    log_memory_usage,
    log_throughput,
    log_turn_latency,
)
from voice_ai.observability.logs import ForwardingHandler, LogSink, configure_file_logging
from voice_ai.observability.metrics import VoiceMetrics
from voice_ai.records import CallRecord, TurnTimings
from voice_ai.store import EventKind

logger = logging.getLogger("voice_ai.telemetry")
breaker_log = logging.getLogger("voice_ai.breaker")
POLL_INTERVAL_S = 2.0
REPORT_INTERVAL_S = 30.0  # THROUGHPUT: and memory_usage lines


def secrets_of(settings: Settings) -> list[str]:
    keys = (settings.deepgram_api_key, settings.openai_api_key, settings.cartesia_api_key,
            settings.livekit_api_secret, settings.calls_api_token)
    return [k.get_secret_value() for k in keys if k is not None and k.get_secret_value()]


@ray.remote(max_restarts=-1, max_task_retries=-1)
class TelemetryHub:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, ForwardingHandler)]:
            root.removeHandler(handler)  # this process writes the files; it must not forward
        self._sink = LogSink(configure_file_logging(settings.log_dir, settings.log_level,
                                                    secrets=secrets_of(settings)))
        self._metrics = VoiceMetrics()
        self._metrics.max_concurrent_calls.set(settings.max_concurrent_calls)
        self._metrics.start_providers_at_zero(
            {stage: [p.provider for p in pools] for stage, pools in pool_layout(settings).items()})
        self._store = StoreClient(namespace=settings.ray_namespace)
        self._ns = settings.ray_namespace
        self._poller: asyncio.Task[None] | None = None
        self._breaker_seq = 0
        self._window = {"started": 0, "ended": 0, "turns": 0}
        self._window_since = time.time()
        self._active = 0

    async def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever())

    # --- events from the dispatcher and call actors -----------------------------------------
    def call_started(self, call_id: str, direction: str, caller_masked: str, node: str) -> None:
        self._metrics.call_started(direction)
        self._active += 1
        self._window["started"] += 1
        audit_call_start(call_id, direction, caller_masked, node)

    async def call_rejected(self, call_id: str, direction: str, caller_masked: str) -> None:
        self._metrics.call_rejected()
        audit_call_rejected(call_id, direction, caller_masked, reason="MAX_CONCURRENT_CALLS")
        await self._store.write_event(EventKind.REJECTION, component="dispatcher",
                                      detail=f"call {call_id} rejected busy", ts=time.time())

    def call_ended(self, record: CallRecord) -> None:
        """Called once the record is durable in the store, so CALL_END follows durability."""
        self._metrics.call_ended(record)
        self._active -= 1
        self._window["ended"] += 1
        audit_call_end(record)

    def turn(self, call_id: str, turn: TurnTimings) -> None:
        self._metrics.observe_turn(turn)
        self._window["turns"] += 1
        log_turn_latency(call_id, turn)

    def error(self, component: str) -> None:
        self._metrics.error(component)

    def webhook_rejected(self, reason: str) -> None:
        """A Serve replica refused a LiveKit webhook (voice_ai_webhooks_rejected_total)."""
        self._metrics.webhook_rejected(reason)

    def ingest_logs(self, batch: list[Mapping[str, object]]) -> int:
        return self._sink.ingest(batch)

    def metrics_text(self) -> bytes:
        return self._metrics.render()

    # --- polling ----------------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        last_report = time.time()
        while True:
            report = time.time() - last_report >= REPORT_INTERVAL_S
            try:
                await self.poll_once(report=report)
            except Exception:
                logger.exception("telemetry poll failed")
            if report:
                last_report = time.time()
            await asyncio.sleep(POLL_INTERVAL_S)

    async def poll_once(self, *, report: bool = False) -> None:
        processes: dict[tuple[str, str], dict[str, float]] = {}
        for stage, pools in pool_layout(self._settings).items():
            for pool in pools:
                infos = await _gather_infos(pool.names, self._ns)
                live = [i for i in infos if i is not None]
                self._metrics.set_pool(pool.label, queue_length=sum(i["in_flight"] for i in live),
                                       workers=len(live))
                self._metrics.set_component_health(f"{pool.label}_pool", healthy=bool(live))
                for info in live:
                    key = (f"{stage}_pool", info["node_id"][:12])
                    slot = processes.setdefault(key, {"cpu_percent": 0.0, "rss_bytes": 0.0})
                    slot["cpu_percent"] += info["cpu_percent"]
                    slot["rss_bytes"] += info["rss_bytes"]
        try:
            dispatcher = ray.get_actor(DISPATCHER, namespace=self._ns)
            processes.update(await asyncio.wait_for(dispatcher.process_stats.remote(), 5.0))
            self._metrics.set_component_health("dispatcher", healthy=True)
        except Exception:
            self._metrics.set_component_health("dispatcher", healthy=False)
        for (component, node), stats in processes.items():
            self._metrics.set_process(component, node, cpu_percent=stats["cpu_percent"],
                                      rss_bytes=int(stats["rss_bytes"]))
        await self._poll_breakers()
        if report:
            self._report(processes)

    async def _poll_breakers(self) -> None:
        try:
            registry = ray.get_actor(BREAKER_REGISTRY, namespace=self._ns)
            snapshots = await registry.snapshots.remote()
            self._breaker_seq, transitions = await registry.transitions_since.remote(
                self._breaker_seq)
        except ValueError:  # no cloud provider configured: no registry
            return
        for provider, snap in snapshots.items():
            self._metrics.set_breaker(provider, str(snap["state"]), transitioned=False)
        for t in transitions:
            to_state = str(t["to_state"])
            self._metrics.set_breaker(t["provider"], to_state, transitioned=True)
            # every transition goes to the errors log: an open breaker is an incident, and
            # its recovery closes that incident
            breaker_log.error("BREAKER_TRANSITION", extra={
                "provider": t["provider"], "from_state": str(t["from_state"]),
                "to_state": to_state, "reason": t["reason"]})
            await self._store.write_event(
                EventKind.BREAKER, component=t["provider"],
                detail=f"{t['from_state']} -> {to_state}: {t['reason']}", ts=time.time())

    def _report(self, processes: Mapping[tuple[str, str], Mapping[str, float]]) -> None:
        now = time.time()
        log_throughput(window_s=now - self._window_since, calls_started=self._window["started"],
                       calls_ended=self._window["ended"], turns=self._window["turns"],
                       active_calls=self._active)
        self._window = {"started": 0, "ended": 0, "turns": 0}
        self._window_since = now
        for (component, node), stats in processes.items():
            log_memory_usage(component, int(stats["rss_bytes"]), node=node)


async def _gather_infos(names: list[str], namespace: str) -> list[dict[str, Any] | None]:
    async def one(name: str) -> dict[str, Any] | None:
        try:
            handle = ray.get_actor(name, namespace=namespace)
            result: dict[str, Any] = await asyncio.wait_for(handle.info.remote(), timeout=2.0)
            return result
        except Exception:
            return None

    return list(await asyncio.gather(*(one(n) for n in names)))
