"""Deepgram outage under load: how many turns cluster-wide hit it before the breaker opened.

10 concurrent simulated calls through the whole system while the Deepgram simulator answers
HTTP 500. Prints the turns that reached a failing Deepgram before the breaker opened (bounded by
BREAKER_MIN_REQUESTS), the time from the first failure to the breaker opening, that every turn
was answered (whisper fallback), then recovery once Deepgram is healthy again.

    python -m benchmarks.failover [--calls 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.load import ROOT, free_port, start_ray
from benchmarks.sides import Phase, drive
from benchmarks.simhost import SimHost
from voice_ai.pipeline.scenario import Scenario, load_scenario

__all__ = ["main"]

RECOVERY_S = 4.0
RAMP_S = 8.0


def _calls(system: Any, n: int, scenario: Scenario, label: str,
           console: Console) -> list[dict[str, Any]]:
    from voice_ai.pipeline.specs import CallSpec
    from voice_ai.records import CallRecord

    async def one(call_id: str, s: Scenario) -> dict[str, Any] | None:
        spec = CallSpec(call_id=call_id, scenario=s, record_audio=False)
        r = await system.handles.dispatcher.run_simulated.remote(spec)
        return r.to_dict() if isinstance(r, CallRecord) else None

    # arrivals spread over RAMP_S: all calls still overlap (each lasts longer than the ramp),
    # but callers do not all stop speaking in the same instant
    with console.status(label):
        records, _, _ = asyncio.run(drive(one, Phase(label, n, 1, (scenario,), RAMP_S)))
    return records


def _stats(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"avg": None, "max": None}
    return {"avg": round(sum(ordered) / len(ordered), 3), "max": round(ordered[-1], 3)}


def _served(records: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in (t for r in records for t in r["turns"]):
        out[t["stt_provider"] or "none"] = out.get(t["stt_provider"] or "none", 0) + 1
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import ray

    from deployments.local import LocalSystem
    from voice_ai.config import Settings

    p = argparse.ArgumentParser(prog="python -m benchmarks.failover", description=__doc__)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--json", action="store_true", help="print the result as JSON last")
    p.add_argument("--keep", type=Path, default=None,
                   help="keep the run's logs, database and recordings in this folder")
    args = p.parse_args(argv)
    console = Console(stderr=True)
    scenario = load_scenario(ROOT / "scenarios" / "opening_hours.yaml")
    sims = SimHost("realistic").start()
    try:
        with tempfile.TemporaryDirectory(prefix="voice-ai-failover-") as tmp_dir:
            tmp = args.keep or Path(tmp_dir)
            settings = Settings(**sims.settings_overrides(), http_host="127.0.0.1",
                                http_port=free_port(), data_dir=tmp, log_dir=tmp / "logs",
                                db_path=tmp / "calls.db", recordings_dir=tmp / "rec",
                                backup_dir=tmp / "backups", warm_call_actors=args.calls,
                                breaker_recovery_timeout_s=RECOVERY_S, call_actor_memory_mb=200)
            start_ray()
            with LocalSystem(settings, console=console, own_ray=False) as system:
                registry = system.handles.breaker_registry
                sims.set_fault("deepgram", "http_500")
                outage = _calls(system, args.calls, scenario, "Deepgram down", console)
                _, transitions = ray.get(registry.transitions_since.remote(0))
                sims.set_fault("deepgram", "none")
                time.sleep(RECOVERY_S + 0.5)
                after = _calls(system, 2, scenario, "Deepgram back", console)
                _, all_transitions = ray.get(registry.transitions_since.remote(0))
    finally:
        ray.shutdown()
        sims.stop()
    dg = [t for t in all_transitions if t["provider"] == "deepgram"]
    opened = next((t["at"] for t in dg if t["to_state"] == "open"), None)
    faults = sims.faulted_at("deepgram")
    before_open = [f for f in faults if opened is None or f <= opened]
    turns = [t for r in outage for t in r["turns"]]
    result = {
        "calls": args.calls,
        "breaker_min_requests": settings.breaker_min_requests,
        "turns_during_outage": len(turns),
        "deepgram_failures_before_open": len(before_open),
        "deepgram_failures_total": len(faults),
        "first_failure_to_open_ms": (round((opened - faults[0]) * 1000, 1)
                                     if opened is not None and faults else None),
        "outage_calls_completed": sum(r["outcome"] == "completed" for r in outage),
        "unanswered_turns": sum(1 for r in outage if "did not answer" in r.get("error", "")),
        "outage_errors": sorted({r["error"] for r in outage if r.get("error")}),
        "outage_stt_s": _stats([t["stt_s"] for t in turns if t.get("stt_s") is not None]),
        "outage_stt_served_by": _served(outage),
        "recovery_stt_served_by": _served(after),
        "recovery_calls_completed": sum(r["outcome"] == "completed" for r in after),
        "transitions": [f"{t['from_state']}->{t['to_state']}" for t in dg],
    }
    _print(Console(), result, transitions)
    if args.json:
        print(json.dumps(result))
    return result


def _print(console: Console, r: dict[str, Any], outage_transitions: list[Any]) -> None:
    console.print(f"{r['calls']} concurrent calls, Deepgram answering HTTP 500:")
    console.print(f"  turns that hit a Deepgram failure before the breaker opened: "
                  f"{r['deepgram_failures_before_open']} (bound: BREAKER_MIN_REQUESTS = "
                  f"{r['breaker_min_requests']}); failures in all: {r['deepgram_failures_total']}")
    console.print(f"  first failure -> breaker open: {r['first_failure_to_open_ms']} ms")
    console.print(f"  calls completed {r['outage_calls_completed']}/{r['calls']}, "
                  f"unanswered turns {r['unanswered_turns']}, STT served by "
                  f"{r['outage_stt_served_by']} over {r['turns_during_outage']} turns; "
                  f"STT seconds per turn {r['outage_stt_s']}")
    for error in r["outage_errors"]:
        console.print(f"  call error: {error}")
    console.print(f"Deepgram back: calls completed {r['recovery_calls_completed']}/2, STT served "
                  f"by {r['recovery_stt_served_by']}; breaker {', '.join(r['transitions'])}")


if __name__ == "__main__":
    main()
