"""Load benchmark: our system next to the stock agent, in the same run, against the same
provider simulators (docs/performance.md explains every mode and number).

    python -m benchmarks.load                     # must-show: one call, zero profile, then the
                                                  # capacity sweep (its 8-call level: 8 calls)
    python -m benchmarks.load --mode one          # 1 call of >= 10 turns, realistic
    python -m benchmarks.load --mode concurrent   # 8 concurrent calls (six turns, 2 per slot)
    python -m benchmarks.load --mode zero         # Ray's cost per turn: ours - stock, p50
    python -m benchmarks.load --mode capacity     # SLO capacity sweep, ours and stock alternating
    python -m benchmarks.load --mode profile      # 8 calls, py-spy on a call actor, CPU by process
    python -m benchmarks.load --mode smoke        # seconds of calls: the test suite's smoke run

Every mode prints a table per phase (ours, stock, ratios), the machine's load average before
and after, and writes benchmarks/results/<timestamp>-<mode>.json (or ``--out``); its
``summary`` is what ``voice-ai baseline update --from FILE`` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

# only what the stock agent's processes would import anyway: they are forked from a
# forkserver and import this module again (multiprocessing re-imports the main module)
if TYPE_CHECKING:
    from benchmarks.sides import Phase
    from benchmarks.simhost import SimHost
    from voice_ai.pipeline.scenario import Scenario

__all__ = ["ROOT", "drive_phase", "main", "start_ray"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LONG_CALL = ROOT / "scenarios" / "bench" / "long_call.yaml"
SIX_TURNS = ROOT / "scenarios" / "bench" / "six_turns.yaml"
SHORT = [ROOT / "scenarios" / n for n in ("opening_hours.yaml", "book_appointment.yaml")]
MODES = ("must-show", "one", "concurrent", "zero", "capacity", "profile", "smoke")
SLO_P95_MS = 1500.0
CAPACITY_LEVELS = "2,4,6,8,10,12,14,16,20,24"
MUST_SHOW_LEVELS = "4,8,12,16"
RAY_WORKER_NICE = int(os.environ.get("RAY_worker_niceness", "15"))
"""Ray starts its workers (our call actors, pools, the callers' hosts) at this niceness; the
stock agent's call processes get the same plus CALL_ACTOR_NICE, as our call actors do."""
MUST_SHOW_CAPACITY_BUDGET_S = 780.0
"""must-show's whole run fits in ~25 minutes on 2 cores (make bench adds the embedded ~4)"""


def start_ray() -> None:
    """A Ray of our own (``address="local"``: never someone else's cluster on this machine).
    16 logical CPUs for the scheduler only: pools and call actors ask for fractions."""
    import ray

    from actors.names import NAMESPACE
    from actors.worker_setup import RUNTIME_ENV

    ray.init(address="local", namespace=NAMESPACE, runtime_env=RUNTIME_ENV,
             include_dashboard=False, num_cpus=16, log_to_driver=False)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_overrides(sims: SimHost, tmp: Path, warm: int) -> dict[str, Any]:
    return {
        **sims.settings_overrides(),
        "http_host": "127.0.0.1", "http_port": free_port(),
        # the internal face (/metrics, /health/detailed) too: 8001 may be another system's
        "internal_http_port": free_port(),
        "data_dir": str(tmp / "data"), "log_dir": str(tmp / "logs"),
        "db_path": str(tmp / "data" / "voice_ai.db"),
        "recordings_dir": str(tmp / "data" / "recordings"), "backup_dir": str(tmp / "backups"),
        "warm_call_actors": warm, "max_concurrent_calls": 1000,
        # a scheduling reservation, not a limit on real memory: keeps Ray from refusing actors
        "call_actor_memory_mb": 200,
        # a warm pool of dozens of call actors takes minutes to prepare on 2 busy cores
        "startup_timeout_s": 900.0, "call_actor_prepare_timeout_s": 300.0,
        # the simulated callers' hosts (a test harness, outside the call actors): one per 8
        "caller_hosts": max(1, -(-warm // 8)),
    }


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    return {"cpus": psutil.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()]}


def ratios(ours: dict[str, Any], stock: dict[str, Any]) -> dict[str, float | None]:
    def r(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    return {
        "e2e_p50": r(ours["e2e_ms"].get("p50"), stock["e2e_ms"].get("p50")),
        "e2e_p95": r(ours["e2e_ms"].get("p95"), stock["e2e_ms"].get("p95")),
        "cpu_per_call_minute": r(ours["cpu_core_s_per_call_minute"],
                                 stock["cpu_core_s_per_call_minute"]),
        "memory_per_call": r(ours["memory_per_call_uss_mb"]["avg"],
                             stock["memory_per_call_uss_mb"]["avg"]),
    }


def within_slo(side: dict[str, Any]) -> bool:
    p95 = side["e2e_ms"].get("p95")
    return side["turns_unanswered"] == 0 and p95 is not None and p95 <= SLO_P95_MS


class Run:
    """One benchmark run: the simulators, our system, the stock agent's job, the phases."""

    def __init__(self, args: argparse.Namespace, console: Any) -> None:
        from benchmarks.simhost import SimHost

        self.args = args
        self.console = console
        self.phases: list[dict[str, Any]] = []
        self.partial: Path | None = None
        self.sims = SimHost(args.profile, seed=args.seed)

    def phase(self, sides: list[Any], phase: Phase, profile: str) -> dict[str, Any]:
        """Run ``phase`` on each side in turn; returns and keeps the phase's result."""
        if self.sims.profile != profile:
            self.sims.set_profile(profile)
        result: dict[str, Any] = {"name": phase.label, "profile": profile,
                                  "calls": phase.calls, "per_slot": phase.per_slot,
                                  "scenarios": [s.name for s in phase.scenarios],
                                  "load_avg_before": round(os.getloadavg()[0], 2)}
        for side in sides:
            recognised = self.sims.lines_recognised()
            late_marks = self.sims.lateness_marks()
            with self.console.status(f"{phase.label}: {side.name}"):
                result[side.name] = side.run(phase)
            result[side.name]["lines_recognised"] = self.sims.lines_recognised() - recognised
            late = self.sims.lateness_since(late_marks)
            result[side.name]["simulator_late_ms"] = late
            self.console.print(f"{phase.label} [{profile}] {side.name}: simulators late p50/p95/"
                               "max ms: " + ", ".join(
                                   f"{n} {v.get('p50', '-')}/{v.get('p95', '-')}/"
                                   f"{v.get('max', '-')}" for n, v in late.items()))
            self.console.print(f"{phase.label} [{profile}] {side.name}: e2e p50/p95 "
                               f"{result[side.name]['e2e_ms'].get('p50')}/"
                               f"{result[side.name]['e2e_ms'].get('p95')} ms, unanswered "
                               f"{result[side.name]['turns_unanswered']}")
        if "ours" in result and "stock" in result:
            result["ratios"] = ratios(result["ours"], result["stock"])
        if "ours" in result and "stock_td" in result:
            result["ratios_td"] = ratios(result["ours"], result["stock_td"])
        result["load_avg_after"] = round(os.getloadavg()[0], 2)
        self.phases.append(result)
        if self.partial is not None:  # a run stopped early still leaves its finished phases
            self.partial.write_text(json.dumps({"partial": True, "phases": self.phases}))
        return result


def drive_phase(system: Any, phase: Phase) -> dict[str, Any]:
    """Ours only (other benchmarks, e.g. failover, use it)."""
    from benchmarks.sides import OursSide

    return OursSide(system).run(phase)


def _scenarios(paths: list[Path]) -> tuple[Scenario, ...]:
    from voice_ai.pipeline.scenario import load_scenario

    return tuple(load_scenario(p) for p in paths)


def _set(pairs: list[str]) -> dict[str, str]:
    """``--set key=value`` pairs; Settings validates the values."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set wants KEY=VALUE, got {pair!r}")
        out[key.strip().lower()] = value.strip()
    return out


def _levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--levels wants numbers separated by commas, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise SystemExit(f"--levels wants concurrency levels >= 1, got {text!r}")
    return levels


def capacity_levels(args: argparse.Namespace) -> list[int]:
    """The sweep's levels: must-show always includes ``--calls`` (its 8-call figure)."""
    if args.mode == "capacity":
        return _levels(args.levels or CAPACITY_LEVELS)
    if args.mode == "must-show":
        return sorted(set(_levels(args.levels or MUST_SHOW_LEVELS)) | {args.calls})
    return []


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES, default="must-show")
    p.add_argument("--profile", choices=("realistic", "zero"), default="realistic",
                   help="provider timing of the realistic phases (smoke: zero)")
    p.add_argument("--calls", type=int, default=8, help="concurrent calls (concurrent/profile)")
    p.add_argument("--calls-per-slot", type=int, default=None,
                   help="calls each concurrent caller makes back to back")
    p.add_argument("--levels", default=None,
                   help="capacity sweep: concurrency levels, in order (default: capacity "
                        f"{CAPACITY_LEVELS}; must-show {MUST_SHOW_LEVELS}, always with --calls)")
    p.add_argument("--capacity-budget-s", type=float, default=None,
                   help="capacity sweep: start no level that would end past this many seconds "
                        f"of sweep (must-show: {MUST_SHOW_CAPACITY_BUDGET_S:g})")
    p.add_argument("--no-stock", action="store_true", help="ours only")
    p.add_argument("--profile-seconds", type=float, default=30.0)
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of our side (e.g. cloud_placement=pool), repeatable")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from rich.console import Console

    from benchmarks.analysis import store_summary
    from benchmarks.report import print_report

    args = _args(argv)
    if args.mode == "smoke":
        args.profile = "zero"
    console = Console(stderr=True)
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    run = Run(args, console)
    out = args.out or RESULTS / f"{started.strftime('%Y%m%d-%H%M%S')}-{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    run.partial = partial = out.with_suffix(".partial.json")
    run.sims.start()
    extra: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="voice-ai-bench-") as tmp_dir:
            extra = _run_mode(run, Path(tmp_dir))
    finally:
        import ray

        ray.shutdown()
        run.sims.stop()
    first_ours = next((p["ours"] for p in run.phases if "ours" in p), None)
    result = {
        "schema": "voice-ai-load/2",
        "started_at": started.isoformat(timespec="seconds"),
        "mode": args.mode, "seed": args.seed, "settings": _set(args.settings),
        "machine": machine(load_before),
        "phases": run.phases, **extra,
        "simulator_requests": run.sims.request_counts(),
        "summary": store_summary(first_ours) if first_ours else None,
    }
    out.write_text(json.dumps(result, indent=2))
    partial.unlink(missing_ok=True)
    print_report(Console(), result)
    Console().print(f"results: {out}")
    return result


def _run_mode(run: Run, tmp: Path) -> dict[str, Any]:
    from benchmarks.sides import OursSide, Phase, StockSide
    from benchmarks.stock_agent import StockJob
    from deployments.local import LocalSystem
    from voice_ai.config import Settings

    args, sims = run.args, run.sims
    mode = args.mode
    levels = capacity_levels(args)
    most = max([args.calls, *levels]) if mode in ("must-show", "concurrent", "capacity",
                                                    "profile") else 2
    long_call, six_turns = _scenarios([LONG_CALL]), _scenarios([SIX_TURNS])
    scenarios = {"smoke": _scenarios(SHORT), "capacity": six_turns,
                 "concurrent": six_turns}.get(mode, long_call)
    overrides = settings_overrides(sims, tmp, warm=most) | _set(args.settings)
    if mode == "smoke":
        # every call actor retires, so each one's memory is sampled when it exits
        overrides["call_actor_max_calls"] = 1
    settings = Settings(**overrides)
    start_ray()
    with LocalSystem(settings, console=run.console, own_ray=False) as system:
        from actors.caller_actor import RayCallerLines

        voice = prerender_voice(long_call + six_turns if mode == "must-show" else scenarios,
                                settings)
        sims.learn(voice.audio, voice.sample_rate)
        vad_silence, min_delay = settings.endpointing
        urls = sims.base_urls()
        job = StockJob(urls["deepgram_base_url"], urls["openai_base_url"],
                       urls["cartesia_base_url"], vad_silence_s=vad_silence,
                       min_delay_s=min_delay, greeting=settings.greeting,
                       turn_detection="vad",
                       nice=RAY_WORKER_NICE + settings.call_actor_nice)
        ours = OursSide(system)
        # the stock agent's callers are dialled on our system's caller hosts, as ours are
        lines = RayCallerLines(settings)
        stock = StockSide(job, lines)
        stock_td = StockSide(replace(job, turn_detection="default"), lines, name="stock_td")
        sides: list[Any] = [ours] if args.no_stock else [ours, stock]
        extra: dict[str, Any] = {"endpointing_s": {"vad_silence": vad_silence,
                                                   "min_delay": min_delay}}
        per_slot = args.calls_per_slot
        if mode in ("must-show", "one"):
            # livekit's TurnDetector column only in --mode one: must-show keeps to its 30 min
            with_td = sides if args.no_stock or mode == "must-show" else [*sides, stock_td]
            run.phase(with_td, Phase("one call", 1, per_slot or 1, long_call), args.profile)
        if mode == "zero":
            run.phase(sides, Phase("one call, zero profile", 1, per_slot or 1, long_call),
                      "zero")
        if mode == "concurrent":
            run.phase(sides, Phase(f"{args.calls} calls", args.calls, per_slot or 2,
                                   six_turns, ramp_s=args.calls * 0.25), args.profile)
        if mode == "smoke":
            run.phase(sides, Phase("smoke", 2, 1, scenarios, ramp_s=0.2), "zero")
        if mode in ("must-show", "capacity"):
            from benchmarks.capacity import sweep

            budget = args.capacity_budget_s or (MUST_SHOW_CAPACITY_BUDGET_S
                                                if mode == "must-show" else None)
            extra["capacity"] = sweep(run, sides, levels, six_turns, per_slot or 2,
                                      through=args.calls if mode == "must-show" else 0,
                                      budget_s=budget)
        if mode == "must-show":  # after the sweep's 8 calls: the shortest phase goes last
            run.phase(sides, Phase("one call, zero profile", 1, per_slot or 1, long_call),
                      "zero")
        if mode == "profile":
            from benchmarks.profiling import profile_calls

            extra["profile"] = profile_calls(run, ours, Phase(
                f"{args.calls} calls, profiled", args.calls, per_slot or 1, scenarios,
                ramp_s=args.calls * 0.25), args.profile, args.profile_seconds)
        extra["derived"] = derived(run.phases, args.calls, extra.get("capacity"))
        extra["stock_imports_of_ours"] = sorted(stock.voice_ai_modules
                                                | stock_td.voice_ai_modules)
        return extra


def prerender_voice(scenarios: tuple[Scenario, ...], settings: Any) -> Any:
    """Every caller line rendered once through the system's Piper pool (its phrase cache then
    gives call actors the same bytes)."""
    import asyncio

    from benchmarks.prerender import prerender

    return asyncio.run(prerender(scenarios, settings.tts_pool_size, settings.ray_namespace))


def derived(phases: list[dict[str, Any]], calls: int,
            capacity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The must-show figures, read off the phases (the ``calls``-call figure: the concurrent
    phase, or the capacity sweep's level of that many calls) and the capacity sweep."""
    out: dict[str, Any] = {}
    names = {"one call": "one_call", "one call, zero profile": "zero",
             f"{calls} calls": "concurrent", f"capacity {calls} calls": "concurrent"}
    for p in phases:
        ours, stock = p.get("ours"), p.get("stock")
        key = names.get(p["name"])
        if ours is None or key is None:
            continue
        entry: dict[str, Any] = {"calls": p["calls"], "per_slot": p["per_slot"],
                                 "scenarios": p["scenarios"],
                                 "ours_e2e_ms": ours["e2e_ms"],
                                 "ours_unanswered": ours["turns_unanswered"],
                                 "ours_turns_expected": ours["turns_expected"],
                                 "ours_cpu_core_s_per_call_minute":
                                     ours["cpu_core_s_per_call_minute"],
                                 "ours_uss_per_call_mb": ours["memory_per_call_uss_mb"]}
        if stock is not None:
            entry |= {"stock_e2e_ms": stock["e2e_ms"],
                      "stock_unanswered": stock["turns_unanswered"],
                      "stock_cpu_core_s_per_call_minute": stock["cpu_core_s_per_call_minute"],
                      "stock_uss_per_call_mb": stock["memory_per_call_uss_mb"],
                      "ratio_p95": p["ratios"]["e2e_p95"],
                      "ratio_cpu_per_call_minute": p["ratios"]["cpu_per_call_minute"]}
            if p.get("stock_td") is not None:
                entry |= {"stock_td_e2e_ms": p["stock_td"]["e2e_ms"],
                          "stock_td_unanswered": p["stock_td"]["turns_unanswered"],
                          "ratio_p95_td": p["ratios_td"]["e2e_p95"]}
            if key == "zero" and ours["e2e_ms"].get("n") and stock["e2e_ms"].get("n"):
                entry["ray_cost_ms_p50"] = round(ours["e2e_ms"]["p50"]
                                                 - stock["e2e_ms"]["p50"], 1)
        out[key] = entry
    if capacity is not None and "ours" in capacity:
        out["capacity"] = {k: capacity[k] for k in ("ours", "stock", "ours_over_stock",
                                                     "stopped_by") if k in capacity}
    return out


if __name__ == "__main__":
    main()
    # the results are out; Ray's and livekit's native threads can crash interpreter teardown
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
