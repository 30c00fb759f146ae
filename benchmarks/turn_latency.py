"""Response latency of the embedded default (no keys: whisper, the local LLM, Piper): end of
caller speech -> first agent audio, through the whole Ray system.

    python -m benchmarks.turn_latency                 # 1 call of scenarios/bench/long_call.yaml
    python -m benchmarks.turn_latency --make-run      # the 3 concurrent calls of `make run`
    python -m benchmarks.turn_latency --must-show     # both, one system start (make bench)
    python -m benchmarks.turn_latency --calls N --rounds R --scenario FILE --json OUT

Prints per-stage numbers, the machine's load average before and after, and the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

from benchmarks.analysis import answered_e2e, unanswered_turns
from benchmarks.stats import summary
from deployments.local import LocalSystem
from voice_ai.config import Settings, load_settings
from voice_ai.pipeline.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("e2e_s", "stt_s", "end_of_turn_s", "llm_ttft_s", "tts_ttfb_s")


def make_run_scenarios(calls: int = 3) -> list[Scenario]:
    """What ``voice-ai run --calls N`` speaks: every file in scenarios/, in turn."""
    files = sorted((ROOT / "scenarios").glob("*.yaml"))
    return [load_scenario(files[i % len(files)]) for i in range(calls)]


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1, help="concurrent calls per round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "bench" / "long_call.yaml"))
    parser.add_argument("--make-run", action="store_true",
                        help="the 3 concurrent calls of `make run` (every scenario in turn)")
    parser.add_argument("--must-show", action="store_true",
                        help="1 call (--scenario), then the 3 calls of `make run`, one system")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    console = Console()
    # the project's settings (embedded default), on ports nobody else is using
    settings = load_settings().model_copy(update={"http_port": free_port(),
                                                  "internal_http_port": free_port()})
    runs = ([("1 call", [load_scenario(args.scenario)], 1),
             ("make run", make_run_scenarios(3), 1)] if args.must_show else
            [("make run" if args.make_run else f"{args.calls} call(s)",
              make_run_scenarios(3) if args.make_run
              else [load_scenario(args.scenario)] * args.calls, args.rounds)])
    results: list[dict[str, object]] = []
    with LocalSystem(settings, console=console) as system:
        for label, scenarios, rounds in runs:
            results.append(_measure(console, system, settings, label, scenarios, rounds,
                                    args.make_run or label == "make run"))
    result: dict[str, object] = results[0] if len(results) == 1 else {
        "benchmark": "turn_latency", "mode": "must-show", "runs": results}
    print(json.dumps(result, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2))
    return result


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _measure(console: Console, system: LocalSystem, settings: Settings, label: str,
             scenarios: list[Scenario], rounds: int, make_run: bool) -> dict[str, object]:
    load_before = os.getloadavg()
    records, heard, unanswered = [], [], 0
    for r in range(rounds):
        console.print(f"{label}, round {r + 1}/{rounds}: {len(scenarios)} call(s)")
        got = system.run_calls(scenarios)
        records += got
        # as the load benchmark counts: a line is answered when the caller heard a reply
        for rec, scenario in zip(got, scenarios, strict=False):
            as_dict = rec.to_dict() | {"scenario_turns": len(scenario.turns)}
            heard += answered_e2e(as_dict)
            unanswered += unanswered_turns(as_dict, len(scenario.turns))
        unanswered += sum(len(s.turns) for s in scenarios[len(got):])  # never came back
    turns = [t for rec in records for t in rec.turns]
    expected = sum(len(s.turns) for s in scenarios) * rounds
    answered = expected - unanswered

    def col(name: str) -> list[float]:
        if name == "e2e_s":
            return heard
        return [v for t in turns if (v := getattr(t, name)) is not None]

    result: dict[str, object] = {
        "benchmark": "turn_latency",
        "mode": "make-run" if make_run else "calls", "label": label,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"optimization_level": settings.optimization_level,
                     "endpointing_s": settings.endpointing,
                     "providers": [settings.stt_provider, settings.llm_provider,
                                   settings.tts_provider]},
        "scenarios": [s.name for s in scenarios],
        "calls": len(records),
        "completed": sum(r.outcome.value == "completed" for r in records),
        "turns_expected": expected,
        "turns_answered": answered,
        "turns_unanswered": unanswered,
        **{stage: summary(col(stage)) for stage in STAGES},
    }
    table = Table(title=f"{label}: response latency, embedded default (seconds), load average "
                        f"{load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}")
    for c in ("stage", "n", "avg", "p50", "p95", "max"):
        table.add_column(c, justify="right")
    for stage in STAGES:
        s = result[stage]
        assert isinstance(s, dict)
        if s.get("n"):
            cells = (f"{s[k]:.3f}" for k in ("avg", "p50", "p95", "max"))
            table.add_row(stage, str(s["n"]), *cells)
    console.print(table)
    console.print(f"{label}: calls completed {result['completed']}/{result['calls']}, turns "
                  f"unanswered {result['turns_unanswered']} of {expected}")
    return result


if __name__ == "__main__":
    main()
