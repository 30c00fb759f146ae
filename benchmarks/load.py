"""Load generator: N concurrent simulated calls through the whole system, against the baseline.

Calls go through the dispatcher, the warm pool, call actors, the provider pools and breakers;
the real Deepgram/OpenAI/Cartesia plugins talk to the loopback simulators (``--profile
realistic`` or ``zero``). The same scenarios, audio and simulators then run through the
baseline: plain livekit-agents, one process per call, no Ray (benchmarks/baseline.py).

    python -m benchmarks.load                      # full run: 20 calls, baseline, density sweep
    python -m benchmarks.load --short              # make test-performance (a few minutes)
    python -m benchmarks.load --smoke --out F.json # seconds of calls: the test suite's smoke run

Writes benchmarks/results/<timestamp>.json (or ``--out``); its ``summary`` is what
``voice-ai baseline update --from FILE`` reads. docs/performance.md explains every number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.analysis import side_summary, store_summary
from benchmarks.applied import InstrumentedSimulators
from benchmarks.procstats import ProcessSampler
from benchmarks.report import print_report
from voice_ai.pipeline.scenario import Scenario, load_scenario

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SCENARIOS = ("opening_hours.yaml", "book_appointment.yaml", "barge_in.yaml")
CALL_MARKER = "CallActor.run_call"
CALL_ACTOR_MARKER = "ray::CallActor"
RunOne = Callable[[str, Scenario], Awaitable[dict[str, Any] | None]]


def _settings_overrides(sims: InstrumentedSimulators, tmp: Path, warm: int) -> dict[str, Any]:
    return {
        **sims.settings_overrides(),
        "http_host": "127.0.0.1", "http_port": _free_port(),
        "data_dir": str(tmp / "data"), "log_dir": str(tmp / "logs"),
        "db_path": str(tmp / "data" / "voice_ai.db"),
        "recordings_dir": str(tmp / "data" / "recordings"), "backup_dir": str(tmp / "backups"),
        "warm_call_actors": warm, "max_concurrent_calls": 1000,
        # a scheduling reservation, not a limit on real memory: keeps Ray from refusing actors
        "call_actor_memory_mb": 200,
    }


def _start_ray() -> None:
    """A Ray of our own (``address="local"``: never someone else's cluster on this machine).
    16 logical CPUs for the scheduler only: 6 pools x 0.5 + call actors x 0.05 each."""
    import ray

    from actors.names import NAMESPACE
    from actors.worker_setup import RUNTIME_ENV

    ray.init(address="local", namespace=NAMESPACE, runtime_env=RUNTIME_ENV,
             include_dashboard=False, num_cpus=16, log_to_driver=False)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def drive(run_one: RunOne, slots: int, per_slot: int, scenarios: list[Scenario],
                ramp_s: float, label: str, console: Console) -> tuple[list[dict[str, Any]], int]:
    """``slots`` concurrent callers, each making ``per_slot`` calls back to back; starts spread
    evenly over ``ramp_s``. Returns the records and the number of calls attempted."""
    records: list[dict[str, Any]] = []
    total = slots * per_slot
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("calls"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(label, total=total)

        async def slot(i: int) -> None:
            await asyncio.sleep(ramp_s * i / max(1, slots))
            for k in range(per_slot):
                scenario = scenarios[(i + k) % len(scenarios)]
                record = await run_one(uuid.uuid4().hex[:16], scenario)
                if record is not None:
                    records.append(record)
                progress.advance(task)

        await asyncio.gather(*(slot(i) for i in range(slots)))
    return records, total


def _run_ours(system: Any, settings: Any, sims: InstrumentedSimulators, n: int, per_slot: int,
              scenarios: list[Scenario], ramp_s: float, label: str,
              console: Console) -> dict[str, Any]:
    from voice_ai.pipeline.specs import CallSpec
    from voice_ai.records import CallRecord

    dispatcher = system.handles.dispatcher

    async def one(call_id: str, scenario: Scenario) -> dict[str, Any] | None:
        spec = CallSpec(call_id=call_id, scenario=scenario, record_audio=False)
        result = await dispatcher.run_simulated.remote(spec)
        return result.to_dict() if isinstance(result, CallRecord) else None

    sampler = ProcessSampler(CALL_MARKER, kind_marker=CALL_ACTOR_MARKER).start()
    records, attempted = asyncio.run(drive(one, n, per_slot, scenarios, ramp_s, label, console))
    sampler.settle(calls=len(records))
    usage = sampler.stop()
    return side_summary(records, attempted, sims.applied(), settings.endpointing, usage,
                        usage.call_process_uss_peaks) | {"_records": records}


def _cold_setups(settings: Any, scenario: Scenario, count: int) -> list[float]:
    """Call setup from a cold actor: the dispatcher's path when the warm pool is empty
    (create the actor, it prepares inside ``run_call``), timed from admission."""
    import ray

    from actors.call_actor import CallActor
    from voice_ai.pipeline.specs import CallSpec

    out: list[float] = []
    for _ in range(count):
        admitted = time.time()
        actor = CallActor.options(  # type: ignore[attr-defined]
            num_cpus=settings.call_actor_num_cpus,
            memory=settings.call_actor_memory_mb * 1024 * 1024).remote(settings)
        spec = CallSpec(call_id=uuid.uuid4().hex[:16], scenario=scenario, record_audio=False,
                        admitted_at=admitted, warm=False)
        record = ray.get(actor.run_call.remote(spec))
        ray.kill(actor, no_restart=True)
        if record.setup_s is not None:
            out.append(record.setup_s)
    return out


def _density(system: Any, settings: Any, sims: InstrumentedSimulators, levels: list[int],
             scenarios: list[Scenario], console: Console) -> dict[str, Any]:
    """Raise concurrent calls until p95 overhead > 50 ms or success < 99 %."""
    cores = psutil.cpu_count() or 1
    steps: list[dict[str, Any]] = []
    best = 0
    for n in levels:
        s = _run_ours(system, settings, sims, n, 1, scenarios, ramp_s=n * 0.1,
                      label=f"density {n} calls", console=console)
        p95 = s["overhead_ms"].get("p95")
        ok = s["success_rate"] >= 0.99 and p95 is not None and p95 <= 50.0
        steps.append({"calls": n, "concurrency_reached": s["concurrency_reached"],
                      "overhead_p95_ms": p95, "success_rate": s["success_rate"],
                      "cpu_core_s_per_call_minute": s["cpu_core_s_per_call_minute"],
                      "within_limits": ok})
        console.print(f"density {n}: p95 overhead {p95} ms, success {s['success_rate']:.1%}")
        if not ok:
            break
        best = n
    return {"cores": cores, "steps": steps, "highest_calls_within_limits": best,
            "calls_per_core": round(best / cores, 2)}


def _run_baseline(overrides: dict[str, Any], audio: Path, sims: InstrumentedSimulators,
                  endpointing: tuple[float, float], n: int, per_slot: int,
                  scenarios: list[Scenario], ramp_s: float, console: Console) -> dict[str, Any]:
    from benchmarks.baseline import BaselinePool

    uss: list[int] = []

    async def go() -> tuple[list[dict[str, Any]], int]:
        pool = BaselinePool(json.dumps(overrides), audio, n)
        with console.status(f"starting {n} baseline call processes"):
            await pool.fill()

        async def one(call_id: str, scenario: Scenario) -> dict[str, Any] | None:
            call = await pool.run_call(call_id, scenario.model_dump(mode="json"))
            uss.append(call.uss_peak)
            return call.record

        try:
            return await drive(one, n, per_slot, scenarios, ramp_s, "baseline (no Ray)",
                               console)
        finally:
            await pool.close()

    sampler = ProcessSampler("benchmarks.baseline").start()
    records, attempted = asyncio.run(go())
    usage = sampler.stop()
    return side_summary(records, attempted, sims.applied(), endpointing, usage, uss) | {
        "_records": records}


def _ratios(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    def r(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    return {
        "e2e_avg": r(ours["e2e_ms"].get("avg"), base["e2e_ms"].get("avg")),
        "e2e_p95": r(ours["e2e_ms"].get("p95"), base["e2e_ms"].get("p95")),
        "overhead_p95": r(ours["overhead_ms"].get("p95"), base["overhead_ms"].get("p95")),
        "cpu_per_call_minute": r(ours["cpu_core_s_per_call_minute"],
                                 base["cpu_core_s_per_call_minute"]),
        "memory_per_call": r(ours["memory_per_call_uss_mb"]["avg"],
                             base["memory_per_call_uss_mb"]["avg"]),
        "memory_total_per_call": r(ours["memory_total_per_concurrent_call_mb"],
                                   base["memory_total_per_concurrent_call_mb"]),
    }


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=("realistic", "zero"), default="realistic")
    p.add_argument("--calls", type=int, default=None, help="concurrent calls (default 20)")
    p.add_argument("--calls-per-slot", type=int, default=None,
                   help="calls each concurrent caller makes back to back (default 2)")
    p.add_argument("--short", action="store_true", help="a few minutes: make test-performance")
    p.add_argument("--smoke", action="store_true", help="seconds: 2 calls a side, no sweep")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--density", default=None,
                   help="comma-separated concurrency levels of the sweep; 'none' to skip")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from deployments.local import LocalSystem
    from voice_ai.config import Settings

    args = _args(argv)
    mode = "smoke" if args.smoke else "short" if args.short else "full"
    n = args.calls or {"smoke": 2, "short": 10, "full": 20}[mode]
    per_slot = args.calls_per_slot or {"smoke": 1, "short": 1, "full": 2}[mode]
    density = args.density or {"smoke": "none", "short": "10,20", "full": "10,20,25,30,40"}[mode]
    levels = [] if density == "none" else [int(x) for x in density.split(",")]
    console = Console(stderr=True)
    scenarios = [load_scenario(ROOT / "scenarios" / name) for name in SCENARIOS]
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    sims = InstrumentedSimulators(args.profile, seed=args.seed).start()
    result: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="voice-ai-bench-") as tmp_dir:
            tmp = Path(tmp_dir)
            overrides = _settings_overrides(sims, tmp, warm=n)
            if args.smoke:
                # every call actor retires, so each one's memory is sampled when it exits: an
                # actor kept for reuse is only counted if a sample sees its busy title, which
                # Ray resets whenever the dispatcher's stats() poll finishes (reuse itself is
                # tests/test_actor_reuse.py's subject)
                overrides["call_actor_max_calls"] = 1
            settings = Settings(**overrides)
            audio = tmp / "caller_audio.pkl"
            _start_ray()
            with LocalSystem(settings, console=console, own_ray=False) as system:
                from benchmarks.prerender import prerender, save_audio

                voice = asyncio.run(prerender(scenarios, settings.tts_pool_size,
                                                settings.ray_namespace))
                save_audio(voice, audio)
                ours = _run_ours(system, settings, sims, n, per_slot, scenarios,
                                 ramp_s=n * 0.1, label=f"ours: {n} concurrent", console=console)
                with console.status("cold call setups"):
                    cold = _cold_setups(settings, scenarios[0], 1 if args.smoke else 3)
                dens = (_density(system, settings, sims, levels, scenarios, console)
                        if levels else None)
            base = None if args.no_baseline else _run_baseline(
                {k: v for k, v in overrides.items() if k != "warm_call_actors"}, audio, sims,
                settings.endpointing, n, per_slot, scenarios, n * 0.1, console)
    finally:
        import ray

        ray.shutdown()
        sims.stop()
    from benchmarks.stats import summary

    ours["setup_cold_ms"] = {k: (round(v * 1000, 2) if k != "n" else v)
                             for k, v in summary(cold).items()}
    result = {
        "schema": "voice-ai-load/1",
        "started_at": started.isoformat(timespec="seconds"),
        "mode": mode, "profile": args.profile, "concurrent_calls": n,
        "calls_per_slot": per_slot,
        "endpointing_s": {"vad_silence": settings.endpointing[0],
                          "min_delay": settings.endpointing[1],
                          "optimization_level": settings.optimization_level},
        "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "ours": {k: v for k, v in ours.items() if not k.startswith("_")},
        "baseline": ({k: v for k, v in base.items() if not k.startswith("_")}
                     if base else None),
        "ratios": _ratios(ours, base) if base else None,
        "density": dens,
        "simulator_requests": sims.request_counts(),
        "summary": store_summary(ours),
    }
    out = args.out or RESULTS / f"{started.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_report(Console(), result)
    Console().print(f"results: {out}")
    return result


if __name__ == "__main__":
    main()
