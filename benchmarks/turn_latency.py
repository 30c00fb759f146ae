"""Response latency with the local models: end of caller speech -> first agent audio.

Runs simulated calls through the whole Ray system (dispatcher, warm call actors, pools) and
prints per-stage numbers. Usage: python -m benchmarks.turn_latency [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import psutil
from rich.console import Console
from rich.table import Table

from benchmarks.stats import summary
from deployments.local import LocalSystem
from voice_ai.config import load_settings
from voice_ai.pipeline.scenario import load_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1, help="concurrent calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenario", default="scenarios/book_appointment.yaml")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    console = Console()
    settings = load_settings()
    scenario = load_scenario(args.scenario)
    records = []
    with LocalSystem(settings, console=console) as system:
        for r in range(args.rounds):
            console.print(f"round {r + 1}/{args.rounds}: {args.calls} call(s)")
            records += system.run_calls([scenario] * args.calls)
    turns = [t for rec in records for t in rec.turns]

    def col(name: str) -> list[float]:
        return [v for t in turns if (v := getattr(t, name)) is not None]

    result = {
        "benchmark": "turn_latency",
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "settings": {"optimization_level": settings.optimization_level,
                     "endpointing_s": settings.endpointing},
        "calls": len(records),
        "completed": sum(r.outcome.value == "completed" for r in records),
        "turns": len(turns),
        "e2e_s": summary(col("e2e_s")),
        "stt_s": summary(col("stt_s")),
        "end_of_turn_s": summary(col("end_of_turn_s")),
        "llm_ttft_s": summary(col("llm_ttft_s")),
        "tts_ttfb_s": summary(col("tts_ttfb_s")),
    }
    table = Table(title="Response latency, local models (seconds)")
    for c in ("stage", "n", "avg", "p50", "p95", "max"):
        table.add_column(c, justify="right")
    for stage in ("e2e_s", "stt_s", "end_of_turn_s", "llm_ttft_s", "tts_ttfb_s"):
        s = result[stage]
        assert isinstance(s, dict)
        if s.get("n"):
            cells = (f"{s[k]:.3f}" for k in ("avg", "p50", "p95", "max"))
            table.add_row(stage, str(s["n"]), *cells)
    console.print(table)
    print(json.dumps(result, indent=2))
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
