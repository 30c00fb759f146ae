"""The telemetry hub: one named actor that every actor on every node reports to.

A Ray shell over ``voice_ai.observability.hub.TelemetryHubCore``: it holds the cluster's
metrics registry (one scrape of ``/metrics`` shows the whole cluster), owns the runbook's log
files (records from every process arrive through ``ingest_logs``), and polls the pools, the
dispatcher, the breaker registry and the store writer. Polling starts in the constructor, so a
hub that Ray restarts polls again by itself. The probes below are the Ray side of the core's
ports, each a few lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import ray

from actors.hub_client import RayTelemetry
from actors.names import BREAKER_REGISTRY, DISPATCHER
from actors.pool_layout import needs_breakers, pool_layout
from actors.store_writer import StoreClient, durable_records, secrets_of
from voice_ai.calls.ports import ProcessStats
from voice_ai.config import Settings
from voice_ai.observability.hub import (
    BreakerTransition,
    PoolView,
    TelemetryHubCore,
    WorkerSample,
)
from voice_ai.observability.logs import ForwardingHandler, LogSink, configure_file_logging
from voice_ai.observability.metrics import VoiceMetrics
from voice_ai.records import CallRecord, TurnTimings
from voice_ai.store.durable import DurableRecords

__all__ = ["RayTelemetry", "TelemetryHub", "secrets_of"]

logger = logging.getLogger("voice_ai.telemetry")
POLL_INTERVAL_S = 2.0
REPORT_INTERVAL_S = 30.0  # THROUGHPUT: and memory_usage lines


@ray.remote(max_restarts=-1, max_task_retries=-1)
class TelemetryHub:
    def __init__(self, settings: Settings) -> None:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, ForwardingHandler)]:
            root.removeHandler(handler)  # this process writes the files; it must not forward
        self._sink = LogSink(configure_file_logging(settings.log_dir, settings.log_level,
                                                    secrets=secrets_of(settings)))
        metrics = VoiceMetrics()
        metrics.max_concurrent_calls.set(settings.max_concurrent_calls)
        layout = pool_layout(settings)
        metrics.start_providers_at_zero(
            {stage: [p.provider for p in pools] for stage, pools in layout.items()})
        ns, t = settings.ray_namespace, settings.actor_reply_timeout_s
        node = ray.get_runtime_context().get_node_id()
        self._store = StoreClient(namespace=ns, deadline_s=2 * t)
        actors = NamedActors(ns)
        self.core = TelemetryHubCore(
            metrics, [PoolView(p.stage, p.label, tuple(p.names))
                      for pools in layout.values() for p in pools],
            _RayPools(actors), _RayDispatcher(actors),
            _RayBreakers(actors) if needs_breakers(settings) else None, _RayStore(self._store),
            _HeadSpool(durable_records(settings, node)), self._store,
            probe_timeout_s=min(t, 2.0), report_interval_s=REPORT_INTERVAL_S)
        # an async actor's constructor runs on its event loop: polling starts here, so a hub
        # that Ray restarts resumes its duties without anyone calling start()
        self._poller = asyncio.get_running_loop().create_task(
            self.core.run_forever(POLL_INTERVAL_S))

    async def start(self) -> None:
        """Kept for callers of the old interface: polling already runs."""

    # --- events from the dispatcher, call actors and Serve replicas ------------------------
    def call_started(self, call_id: str, direction: str, caller_masked: str, node: str) -> None:
        self.core.call_started(call_id, direction, caller_masked, node)

    async def call_rejected(self, call_id: str, direction: str, caller_masked: str) -> None:
        self.core.call_rejected(call_id, direction, caller_masked)
        await self.core.rejection_event(call_id)

    def call_ended(self, record: CallRecord) -> bool:
        """Once the record is durable (store or spool); repeats are not counted again."""
        return self.core.call_ended(record)

    def turn(self, call_id: str, turn: TurnTimings) -> None:
        self.core.turn(call_id, turn)

    def error(self, component: str) -> None:
        self.core.error(component)

    def webhook_rejected(self, reason: str) -> None:
        """A Serve replica refused a LiveKit webhook (voice_ai_webhooks_rejected_total)."""
        self.core.metrics.webhook_rejected(reason)

    def spool_changed(self, node: str, pending: int, spooled: int, replayed: int,
                      problem: str) -> None:
        self.core.spool_changed(node, pending, spooled=spooled, replayed=replayed,
                                problem=problem)

    def ingest_logs(self, batch: list[Mapping[str, object]]) -> int:
        return self._sink.ingest(batch)

    def metrics_text(self) -> bytes:
        return self.core.metrics.render()

    async def poll_once(self) -> int:
        await self.core.poll_once()
        return self.core.polls

    def active_calls(self) -> int:
        return self.core.active_calls


class NamedActors:
    """Handles of named actors, looked up off the event loop (a GCS lookup blocks) and kept:
    a named actor that Ray restarts keeps its handle. A failed call forgets it."""

    def __init__(self, namespace: str) -> None:
        self._ns = namespace
        self._handles: dict[str, Any] = {}

    async def get(self, name: str) -> Any:
        if name not in self._handles:
            self._handles[name] = await asyncio.to_thread(ray.get_actor, name,
                                                          namespace=self._ns)
        return self._handles[name]

    async def call(self, name: str, method: str, *args: object) -> Any:
        handle = await self.get(name)
        try:
            return await getattr(handle, method).remote(*args)
        except Exception:
            self._handles.pop(name, None)
            raise


class _RayPools:
    def __init__(self, actors: NamedActors) -> None:
        self._actors = actors

    async def sample(self, names: tuple[str, ...]) -> list[WorkerSample | None]:
        return list(await asyncio.gather(*(self._one(n) for n in names)))

    async def _one(self, name: str) -> WorkerSample | None:
        try:
            info: dict[str, Any] = await asyncio.wait_for(self._actors.call(name, "info"), 2.0)
        except Exception:
            return None
        return WorkerSample(str(info["node_id"]), int(info["in_flight"]),
                            float(info["cpu_percent"]), int(info["rss_bytes"]))


class _RayDispatcher:
    def __init__(self, actors: NamedActors) -> None:
        self._actors = actors

    async def active_call_ids(self) -> tuple[str, ...]:
        ids: tuple[str, ...] = await self._actors.call(DISPATCHER, "active_call_ids")
        return ids

    async def call_actor_stats(self) -> list[ProcessStats]:
        stats: list[ProcessStats] = await self._actors.call(DISPATCHER, "call_actor_stats")
        return stats


class _RayBreakers:
    """The breaker registry (the hub has one only when a cloud provider is configured)."""

    def __init__(self, actors: NamedActors) -> None:
        self._actors = actors

    async def states(self) -> dict[str, str]:
        snapshots: dict[str, dict[str, Any]] = await self._actors.call(BREAKER_REGISTRY,
                                                                       "snapshots")
        return {p: str(s["state"]) for p, s in snapshots.items()}

    async def transitions_since(self, seq: int) -> tuple[int, list[BreakerTransition]]:
        current, raw = await self._actors.call(BREAKER_REGISTRY, "transitions_since", seq)
        return int(current), [BreakerTransition(str(t["provider"]), str(t["from_state"]),
                                                str(t["to_state"]), str(t["reason"]))
                              for t in raw]

    async def restore(self, states: Mapping[str, str]) -> None:
        await self._actors.call(BREAKER_REGISTRY, "restore_states", dict(states))


class _RayStore:
    def __init__(self, client: StoreClient) -> None:
        self._client = client

    async def alive(self) -> bool:
        return await self._client.alive()


class _HeadSpool:
    """The spools this (head) node sees, replayed each poll."""

    def __init__(self, records: DurableRecords) -> None:
        self._records = records

    async def replay(self) -> tuple[int, dict[str, int]]:
        result = await self._records.replay()
        return result.replayed, self._records.spool.pending_by_node()
