"""The two sides of a load run, driven the same way: N concurrent callers, M calls each.

``OursSide``: calls through our whole system (dispatcher, warm call actors, provider pools,
breakers) on a Ray of its own. ``StockSide``: the stock agent, one process per call
(benchmarks/stock_agent.py). Both use the same simulated callers (on the system's caller hosts,
reached over a line: ``voice_ai.pipeline.line``), scenarios, audio and provider simulators; each
phase samples the CPU and memory of every process below the driver that belongs to the side.
The callers are the test harness and count for neither side.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.analysis import side_summary
from benchmarks.procstats import ProcessSampler
from benchmarks.stock_agent import StockJob, StockPool
from voice_ai.pipeline.line import CallerLines, CallerOrder
from voice_ai.pipeline.scenario import Scenario

__all__ = ["CALL_ACTOR_MARKER", "OursSide", "Phase", "StockSide", "drive"]

CALL_MARKER = "CallActor.run_call"
CALL_ACTOR_MARKER = "ray::CallActor"
STOCK_MARKER = "stock-agent-call"
CALLER_HOST_MARKER = "ray::CallerHost"


def is_stock(cmdline: str) -> bool:
    """The stock agent's processes: its forkserver and the call processes forked from it (they
    share its command line). Each side counts only its own processes: the other side's stand
    idle beside it."""
    return "multiprocessing.forkserver" in cmdline


def is_ours(cmdline: str) -> bool:
    """Our system's processes: every one below the driver except the stock agent's and the
    caller hosts (the simulated callers: the harness, as the callers are on the stock side)."""
    return not is_stock(cmdline) and CALLER_HOST_MARKER not in cmdline


RunOne = Callable[[str, Scenario], Awaitable[dict[str, Any] | None]]


def calls_served_by_pid(namespace: str) -> dict[int, int]:
    """pid -> calls begun, of each call actor alive now (as it answers ``info``). A call actor
    that served a call in a phase is one whose count grew; one that exited meanwhile is
    counted by the sampler."""
    import ray

    from actors.names import CALL_ACTOR_PREFIX

    handles = [ray.get_actor(e["name"], namespace=namespace)
               for e in ray.util.list_named_actors(all_namespaces=True)
               if e["namespace"] == namespace and e["name"].startswith(CALL_ACTOR_PREFIX)]
    served: dict[int, int] = {}
    for handle in handles:
        try:
            info: Any = ray.get(handle.info.remote(), timeout=10)  # an ActorInfo
        except Exception:  # retired or dying meanwhile: the sampler sees its exit
            continue
        served[info.pid] = info.calls_served
    return served


@dataclass(frozen=True)
class Phase:
    """``calls`` concurrent callers, each making ``per_slot`` calls back to back; their
    starts spread evenly over ``ramp_s``."""

    label: str
    calls: int
    per_slot: int
    scenarios: tuple[Scenario, ...]
    ramp_s: float = 0.0

    def scenario_for(self, slot: int, k: int) -> Scenario:
        return self.scenarios[(slot + k) % len(self.scenarios)]


async def drive(run_one: RunOne, phase: Phase,
                progress: Callable[[], None] | None = None) -> tuple[list[dict[str, Any]],
                                                                    int, int]:
    """Run the phase; returns the records that came back, calls attempted, caller lines
    expected (every attempted call's scenario lines)."""
    records: list[dict[str, Any]] = []
    expected = 0

    async def slot(i: int) -> None:
        nonlocal expected
        await asyncio.sleep(phase.ramp_s * i / max(1, phase.calls))
        for k in range(phase.per_slot):
            scenario = phase.scenario_for(i, k)
            expected += len(scenario.turns)
            record = await run_one(uuid.uuid4().hex[:16], scenario)
            if record is not None:
                records.append(record)
            if progress is not None:
                progress()

    await asyncio.gather(*(slot(i) for i in range(phase.calls)))
    return records, phase.calls * phase.per_slot, expected


class OursSide:
    """Our system, already started (``deployments.local.LocalSystem``)."""

    name = "ours"

    def __init__(self, system: Any) -> None:
        self._system = system

    def run(self, phase: Phase, progress: Callable[[], None] | None = None) -> dict[str, Any]:
        from voice_ai.pipeline.specs import CallSpec
        from voice_ai.records import CallRecord

        dispatcher = self._system.handles.dispatcher

        async def one(call_id: str, scenario: Scenario) -> dict[str, Any] | None:
            spec = CallSpec(call_id=call_id, scenario=scenario, record_audio=False)
            result = await dispatcher.run_simulated.remote(spec)
            if not isinstance(result, CallRecord):
                return None
            return result.to_dict() | {"scenario_turns": len(scenario.turns)}

        namespace = self._system.settings.ray_namespace
        served_before = calls_served_by_pid(namespace)
        sampler = ProcessSampler(CALL_MARKER, kind_marker=CALL_ACTOR_MARKER,
                                 include=is_ours).start()
        records, attempted, expected = asyncio.run(drive(one, phase, progress))
        sampler.mark_in_call(pid for pid, n in calls_served_by_pid(namespace).items()
                             if n > served_before.get(pid, 0))
        sampler.settle(calls=len(records))
        usage = sampler.stop()
        return side_summary(records, attempted, expected, usage, usage.call_process_uss_peaks)


class StockSide:
    """The stock agent: a pool of prepared processes, one per concurrent call. Each call's
    simulated caller is dialled on ``lines`` (our system's caller hosts, as for our calls) and
    the call process reaches it over the line, as a stock agent reaches a LiveKit room."""

    def __init__(self, job: StockJob, lines: CallerLines, name: str = "stock") -> None:
        self.name = name
        self._job = job
        self._lines = lines
        self.voice_ai_modules: set[str] = set()

    def run(self, phase: Phase, progress: Callable[[], None] | None = None) -> dict[str, Any]:
        """The pool is filled before the phase is sampled (as our warm pool is); the
        replacement started for every call that begins is part of the phase."""
        uss: list[int] = []
        loop = asyncio.new_event_loop()
        pool = StockPool(self._job, phase.calls)

        async def one(call_id: str, scenario: Scenario) -> dict[str, Any] | None:
            address = await self._lines.dial(CallerOrder(call_id, scenario, record_audio=False))
            try:
                call = await pool.run_call(call_id, scenario.model_dump(mode="json"), address)
            except RuntimeError:
                return None
            uss.append(call.uss_peak)
            self.voice_ai_modules.update(call.voice_ai_modules)
            return call.record

        try:
            loop.run_until_complete(pool.fill())
            sampler = ProcessSampler(STOCK_MARKER, include=is_stock).start()
            records, attempted, expected = loop.run_until_complete(drive(one, phase, progress))
            usage = sampler.stop()
        finally:
            loop.run_until_complete(pool.close())
            loop.close()
        return side_summary(records, attempted, expected, usage, uss)


def scenarios_turns(scenarios: Sequence[Scenario]) -> int:
    return sum(len(s.turns) for s in scenarios)
