"""The telemetry hub's aggregation without Ray: reconciled gauges, polling that survives
failures and restarts, breaker state re-seeded after a registry restart, spool series."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from prometheus_client.parser import text_string_to_metric_families

from voice_ai.calls.ports import ProcessStats
from voice_ai.observability.hub import (
    BreakerTransition,
    PoolView,
    TelemetryHubCore,
    WorkerSample,
)
from voice_ai.observability.metrics import VoiceMetrics
from voice_ai.records import CallDirection, CallRecord, EndReason

pytestmark = pytest.mark.unit


class Pools:
    def __init__(self) -> None:
        self.down: set[str] = set()

    async def sample(self, names: tuple[str, ...]) -> list[WorkerSample | None]:
        return [None if n in self.down else WorkerSample("node-a" * 3, 1, 10.0, 1000)
                for n in names]


class Dispatcher:
    def __init__(self) -> None:
        self.ids: tuple[str, ...] = ()
        self.fail = False

    async def active_call_ids(self) -> tuple[str, ...]:
        if self.fail:
            raise ConnectionError("dispatcher restarting")
        return self.ids

    async def call_actor_stats(self) -> list[ProcessStats]:
        return [ProcessStats("node-b" * 3, 7, 2000, 5.0)]


class Breakers:
    def __init__(self) -> None:
        self.state = {"deepgram": "closed"}
        self.seq = 0
        self.pending: list[BreakerTransition] = []
        self.restored: list[dict[str, str]] = []

    async def states(self) -> dict[str, str]:
        return dict(self.state)

    async def transitions_since(self, seq: int) -> tuple[int, list[BreakerTransition]]:
        out, self.pending = self.pending, []
        return self.seq, out

    async def restore(self, states: Mapping[str, str]) -> None:
        self.restored.append(dict(states))
        self.state.update(states)

    def open(self) -> None:
        self.state["deepgram"] = "open"
        self.seq += 1
        self.pending.append(BreakerTransition("deepgram", "closed", "open", "5 of 5 failed"))

    def restart(self) -> None:  # a new process: every breaker closed, history from 0
        self.state = {"deepgram": "closed"}
        self.seq = 0


class Store:
    def __init__(self) -> None:
        self.up = True
        self.events: list[tuple[str, str]] = []

    async def alive(self) -> bool:
        return self.up

    async def write_event(self, kind: str, *, component: str, detail: str,
                          ts: float) -> object:
        self.events.append((kind, detail))
        return True


class Spool:
    def __init__(self) -> None:
        self.pending = {"node-a": 3}

    async def replay(self) -> tuple[int, dict[str, int]]:
        replayed = sum(self.pending.values())
        self.pending = dict.fromkeys(self.pending, 0)
        return replayed, dict(self.pending)


class World:
    def __init__(self) -> None:
        self.now = 1000.0
        self.pools, self.dispatcher, self.breakers = Pools(), Dispatcher(), Breakers()
        self.store, self.spool = Store(), Spool()
        self.hub = self.new_hub()

    def new_hub(self) -> TelemetryHubCore:
        return TelemetryHubCore(
            VoiceMetrics(), [PoolView("stt", "stt_whisper", ("stt-whisper-0",))], self.pools,
            self.dispatcher, self.breakers, self.store, self.spool, self.store,
            probe_timeout_s=0.05, clock=lambda: self.now)

    def value(self, name: str, **labels: str) -> float | None:
        for family in text_string_to_metric_families(self.hub.metrics.render().decode()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return sample.value
        return None


def record(call_id: str, reason: EndReason = EndReason.CALLER_HANGUP) -> CallRecord:
    return CallRecord(call_id=call_id, direction=CallDirection.INBOUND, started_at=1.0,
                      ended_at=2.0, end_reason=reason)


def test_repeated_or_unknown_ends_never_push_active_calls_below_zero() -> None:
    w = World()
    w.hub.call_started("c1", "inbound", "+1******67", "n")
    assert w.hub.call_ended(record("c1")) is True
    assert w.hub.call_ended(record("c1")) is False  # the dispatcher reporting a lost call again
    assert w.hub.call_ended(record("c-unknown")) is True  # started before a hub restart
    assert w.value("voice_ai_active_calls") == 0
    assert w.value("voice_ai_calls_ended_total", outcome="completed",
                   end_reason="caller_hangup") == 2


async def test_a_restarted_hub_reconciles_active_calls_from_the_dispatcher() -> None:
    w = World()
    w.dispatcher.ids = ("c1", "c2", "c3")
    w.hub = w.new_hub()  # restarted: it has seen no call_started
    assert w.value("voice_ai_active_calls") == 0
    await w.hub.poll_once()
    assert w.value("voice_ai_active_calls") == 3  # reconciled, not reset
    w.hub.call_ended(record("c2"))
    w.dispatcher.ids = ("c1", "c3")
    await w.hub.poll_once()
    assert w.value("voice_ai_active_calls") == 2


async def test_a_call_started_after_the_dispatcher_answered_is_kept() -> None:
    w = World()
    w.now = 10.0
    w.hub.reconcile((), asked_at=9.0)  # an answer older than the start below
    w.hub.call_started("new", "inbound", "", "n")
    w.hub.reconcile((), asked_at=9.5)
    assert w.hub.active_calls == 1
    w.hub.reconcile((), asked_at=11.0)  # a later answer without it: it ended unreported
    assert w.hub.active_calls == 0


async def test_polls_set_health_of_every_component_and_stamp_the_time() -> None:
    w = World()
    w.pools.down.add("stt-whisper-0")
    w.dispatcher.fail = True
    w.store.up = False
    await w.hub.poll_once()
    assert w.value("voice_ai_component_healthy", component="stt_whisper_pool") == 0
    assert w.value("voice_ai_component_healthy", component="dispatcher") == 0
    assert w.value("voice_ai_component_healthy", component="store_writer") == 0
    assert w.value("voice_ai_component_healthy", component="breaker_registry") == 1
    assert w.value("voice_ai_telemetry_last_poll_timestamp_seconds") == 1000.0
    assert w.value("voice_ai_spooled_records", node="node-a") is None  # store down: no replay
    w.pools.down.clear()
    w.dispatcher.fail, w.store.up = False, True
    await w.hub.poll_once()
    assert w.value("voice_ai_component_healthy", component="stt_whisper_pool") == 1
    assert w.value("voice_ai_process_memory_bytes", component="call_actors",
                   node="node-bnode-b") == 2000
    assert w.value("voice_ai_spooled_records", node="node-a") == 0
    assert w.value("voice_ai_records_replayed_total") == 3


async def test_polling_goes_on_after_a_failing_poll() -> None:
    w = World()
    polls = 0

    async def sleep(_s: float) -> None:
        nonlocal polls
        polls += 1
        w.now += 2
        if polls == 3:
            raise asyncio.CancelledError

    async def broken() -> dict[str, str]:
        raise RuntimeError("registry bug")

    w.breakers.states = broken  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await w.hub.run_forever(2.0, sleep=sleep)
    assert w.hub.polls == 3
    assert w.value("voice_ai_component_healthy", component="breaker_registry") == 0


async def test_a_restarted_breaker_registry_gets_its_open_breakers_back() -> None:
    w = World()
    w.breakers.open()
    await w.hub.poll_once()
    assert w.value("circuit_breaker_state", provider="deepgram") == 1
    assert w.store.events == [("breaker", "closed -> open: 5 of 5 failed")]
    w.breakers.restart()
    await w.hub.poll_once()
    assert w.breakers.restored == [{"deepgram": "open"}]
    w.breakers.open()  # the next transition after the restart is read (sequence from 0)
    await w.hub.poll_once()
    assert w.value("circuit_breaker_transitions_total", provider="deepgram",
                   to_state="open") == 2
