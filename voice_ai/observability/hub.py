"""``TelemetryHubCore``: what the cluster's telemetry hub knows and does, without Ray.

The hub (``actors/telemetry.py`` is its shell) turns events into metrics and audit lines, and
polls the system for the series no event carries: pool queues and workers, process CPU and
memory, component health, breaker states and transitions, records waiting in the spool.

It is built to survive its own restart and everyone else's:

- the **active-calls gauge is a set of call ids**, not a counter: a repeated or late
  ``call_ended`` cannot push it below zero, and every poll **reconciles** it with the
  dispatcher's list of live calls (calls that started before the hub restarted come back,
  calls whose end it missed go away) instead of restarting at 0;
- ``CALL_END`` is counted once per call id (the dispatcher may report a lost call whose actor
  had reported it already);
- polling runs by itself from construction (``run_forever``), not from a ``start()`` someone
  must remember to call, and stamps ``voice_ai_telemetry_last_poll_timestamp_seconds`` so an
  alert fires when it stops;
- a breaker registry that restarted (its transition sequence went backwards) is read from
  the start again, and re-seeded with the states the hub saw last (``BreakerProbe.restore``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from voice_ai.calls.deadline import within
from voice_ai.calls.ports import ProcessStats
from voice_ai.observability.audit import (
    audit_call_end,
    audit_call_rejected,
    audit_call_start,
    log_memory_usage,
    log_throughput,
    log_turn_latency,
)
from voice_ai.observability.metrics import VoiceMetrics
from voice_ai.records import CallRecord, TurnTimings

__all__ = [
    "BreakerProbe",
    "BreakerTransition",
    "DispatcherProbe",
    "EventSink",
    "PoolView",
    "SpoolProbe",
    "TelemetryHubCore",
    "WorkerSample",
]

logger = logging.getLogger("voice_ai.telemetry")
breaker_log = logging.getLogger("voice_ai.breaker")
REMEMBER_ENDED = 10_000  # call ids whose CALL_END was counted (repeats are ignored)


@dataclass(frozen=True, slots=True)
class PoolView:
    stage: str  # stt, llm, tts
    label: str  # e.g. stt_whisper
    names: tuple[str, ...]  # worker actor names


@dataclass(frozen=True, slots=True)
class WorkerSample:
    node_id: str
    in_flight: int
    cpu_percent: float
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    provider: str
    from_state: str
    to_state: str
    reason: str


class PoolProbe(Protocol):
    async def sample(self, names: tuple[str, ...]) -> list[WorkerSample | None]:
        """One sample per worker name; None for a worker that did not answer."""
        ...


class DispatcherProbe(Protocol):
    async def active_call_ids(self) -> tuple[str, ...]: ...

    async def call_actor_stats(self) -> list[ProcessStats]: ...


class BreakerProbe(Protocol):
    async def states(self) -> dict[str, str]: ...

    async def transitions_since(self, seq: int) -> tuple[int, list[BreakerTransition]]: ...

    async def restore(self, states: Mapping[str, str]) -> None:
        """Re-seed a restarted registry with the last states the hub saw."""
        ...


class StoreProbe(Protocol):
    async def alive(self) -> bool: ...


class SpoolProbe(Protocol):
    async def replay(self) -> tuple[int, dict[str, int]]:
        """Replay the spools this node can see; return how many records were stored, and how
        many still wait per node."""
        ...


class EventSink(Protocol):
    async def write_event(self, kind: str, *, component: str, detail: str,
                          ts: float) -> object: ...


class TelemetryHubCore:
    def __init__(self, metrics: VoiceMetrics, pools: list[PoolView], pool_probe: PoolProbe,
                 dispatcher: DispatcherProbe, breakers: BreakerProbe | None,
                 store: StoreProbe, spool: SpoolProbe, events: EventSink, *,
                 probe_timeout_s: float = 2.0, report_interval_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self._pools = pools
        self._pool_probe = pool_probe
        self._dispatcher = dispatcher
        self._breakers = breakers
        self._store = store
        self._spool = spool
        self._events = events
        self._timeout = probe_timeout_s
        self._report_interval_s = report_interval_s
        self._clock = clock
        self._active: dict[str, float] = {}  # call id -> when the hub learnt of it
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._breaker_seq = 0
        self._breaker_states: dict[str, str] = {}
        self._window = {"started": 0, "ended": 0, "turns": 0}
        self._window_since = clock()
        self._last_report = clock()
        self.polls = 0

    # --- events -----------------------------------------------------------------------------
    def call_started(self, call_id: str, direction: str, caller_masked: str, node: str) -> None:
        self.metrics.call_started(direction)
        if call_id not in self._ended:
            self._active[call_id] = self._clock()
        self._set_active()
        self._window["started"] += 1
        audit_call_start(call_id, direction, caller_masked, node)

    def call_rejected(self, call_id: str, direction: str, caller_masked: str) -> None:
        self.metrics.call_rejected()
        audit_call_rejected(call_id, direction, caller_masked, reason="MAX_CONCURRENT_CALLS")

    def call_ended(self, record: CallRecord) -> bool:
        """Count the end of ``record``'s call once; False for a repeat."""
        self._active.pop(record.call_id, None)
        if record.call_id in self._ended:
            self._set_active()
            return False
        self._ended[record.call_id] = None
        while len(self._ended) > REMEMBER_ENDED:
            self._ended.popitem(last=False)
        self.metrics.call_ended(record)
        self._set_active()
        self._window["ended"] += 1
        audit_call_end(record)
        return True

    def turn(self, call_id: str, turn: TurnTimings) -> None:
        self.metrics.observe_turn(turn)
        self._window["turns"] += 1
        log_turn_latency(call_id, turn)

    def error(self, component: str) -> None:
        self.metrics.error(component)

    def spool_changed(self, node: str, pending: int, *, spooled: int = 0, replayed: int = 0,
                      problem: str = "") -> None:
        self.metrics.set_spooled(node, pending)
        if spooled:
            self.metrics.records_spooled_inc(problem or "other", spooled)
        if replayed:
            self.metrics.records_replayed_inc(replayed)

    @property
    def active_calls(self) -> int:
        return len(self._active)

    def _set_active(self) -> None:
        self.metrics.set_active_calls(len(self._active))

    # --- polling ----------------------------------------------------------------------------
    async def run_forever(self, interval_s: float,
                          sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # one bad poll must not end polling
                logger.exception("telemetry poll failed")
            await sleep(interval_s)

    async def poll_once(self) -> None:
        processes: dict[tuple[str, str], list[float]] = {}
        await self._poll_pools(processes)
        await self._poll_dispatcher(processes)
        for (component, node), (cpu, rss) in processes.items():
            self.metrics.set_process(component, node, cpu_percent=cpu, rss_bytes=int(rss))
        await self._poll_breakers()
        await self._poll_store()
        self.polls += 1
        self.metrics.polled(self._clock())
        if self._clock() - self._last_report >= self._report_interval_s:
            self._report(processes)

    async def _poll_pools(self, processes: dict[tuple[str, str], list[float]]) -> None:
        for pool in self._pools:
            try:
                samples = await within(self._pool_probe.sample(pool.names), 2 * self._timeout,
                                       f"{pool.label} pool")
            except Exception:
                samples = [None] * len(pool.names)
            live = [s for s in samples if s is not None]
            self.metrics.set_pool(pool.label, queue_length=sum(s.in_flight for s in live),
                                  workers=len(live))
            self.metrics.set_component_health(f"{pool.label}_pool", healthy=bool(live))
            for s in live:
                slot = processes.setdefault((f"{pool.stage}_pool", s.node_id[:12]), [0.0, 0.0])
                slot[0] += s.cpu_percent
                slot[1] += s.rss_bytes

    async def _poll_dispatcher(self, processes: dict[tuple[str, str], list[float]]) -> None:
        asked_at = self._clock()
        try:
            ids = await within(self._dispatcher.active_call_ids(), self._timeout, "dispatcher")
        except Exception:
            self.metrics.set_component_health("dispatcher", healthy=False)
            return
        self.metrics.set_component_health("dispatcher", healthy=True)
        self.reconcile(ids, asked_at)
        try:  # best effort: a busy call actor may not answer in time
            stats = await within(self._dispatcher.call_actor_stats(), 2 * self._timeout,
                                 "call actor stats")
        except Exception:
            return
        for st in stats:
            slot = processes.setdefault(("call_actors", st.node_id[:12]), [0.0, 0.0])
            slot[0] += st.cpu_percent
            slot[1] += st.rss_bytes

    def reconcile(self, live_ids: tuple[str, ...], asked_at: float) -> None:
        """Make the active set the dispatcher's, except calls the hub learnt of after it asked
        (their start may not have reached the dispatcher's answer)."""
        live = set(live_ids)
        for call_id in [c for c, since in self._active.items()
                        if c not in live and since < asked_at]:
            del self._active[call_id]
        for call_id in live - self._active.keys():
            if call_id not in self._ended:
                self._active[call_id] = asked_at
        self._set_active()

    async def _poll_breakers(self) -> None:
        if self._breakers is None:
            return
        try:
            states = await within(self._breakers.states(), self._timeout, "breaker registry")
            seq, transitions = await within(self._breakers.transitions_since(self._breaker_seq),
                                            self._timeout, "breaker registry")
        except Exception:
            self.metrics.set_component_health("breaker_registry", healthy=False)
            return
        self.metrics.set_component_health("breaker_registry", healthy=True)
        if seq < self._breaker_seq:  # the registry restarted: its history starts again
            await self._reseed_breakers(states)
            seq, transitions = 0, []
        self._breaker_seq = seq
        for provider, state in states.items():
            self.metrics.set_breaker(provider, state, transitioned=False)
            self._breaker_states[provider] = state
        for t in transitions:
            self.metrics.set_breaker(t.provider, t.to_state, transitioned=True)
            # every transition goes to the errors log: an open breaker is an incident, and
            # its recovery closes that incident
            breaker_log.error("BREAKER_TRANSITION", extra={
                "provider": t.provider, "from_state": t.from_state, "to_state": t.to_state,
                "reason": t.reason})
            await self._event("breaker", t.provider,
                              f"{t.from_state} -> {t.to_state}: {t.reason}")

    async def _reseed_breakers(self, states: Mapping[str, str]) -> None:
        assert self._breakers is not None
        lost = {p: s for p, s in self._breaker_states.items()
                if s != "closed" and states.get(p, "closed") == "closed"}
        logger.warning("breaker registry restarted", extra={"reseeded": sorted(lost)})
        if lost:
            try:
                await within(self._breakers.restore(lost), self._timeout, "breaker registry")
            except Exception as e:
                logger.error("breaker states not restored", extra={
                    "error": f"{type(e).__name__}: {e}"})

    async def _poll_store(self) -> None:
        try:
            alive = await within(self._store.alive(), self._timeout, "store writer")
        except Exception:
            alive = False
        self.metrics.set_component_health("store_writer", healthy=alive)
        if alive:
            try:
                replayed, pending = await within(self._spool.replay(), 10 * self._timeout,
                                                 "spool replay")
            except Exception as e:
                logger.warning("spool replay failed", extra={"error": f"{type(e).__name__}"})
                return
            for node, count in pending.items():
                self.metrics.set_spooled(node, count)
            if replayed:
                self.metrics.records_replayed_inc(replayed)

    async def _event(self, kind: str, component: str, detail: str) -> None:
        try:
            await within(self._events.write_event(kind, component=component, detail=detail,
                                                  ts=self._clock()), 5 * self._timeout, "store")
        except Exception as e:
            logger.warning("event not stored", extra={"kind": kind,
                                                      "error": f"{type(e).__name__}: {e}"})

    async def rejection_event(self, call_id: str) -> None:
        await self._event("rejection", "dispatcher", f"call {call_id} rejected busy")

    def _report(self, processes: Mapping[tuple[str, str], list[float]]) -> None:
        now = self._clock()
        log_throughput(window_s=now - self._window_since, calls_started=self._window["started"],
                       calls_ended=self._window["ended"], turns=self._window["turns"],
                       active_calls=len(self._active))
        self._window = {"started": 0, "ended": 0, "turns": 0}
        self._window_since = now
        self._last_report = now
        for (component, node), (_cpu, rss) in processes.items():
            log_memory_usage(component, int(rss), node=node)
