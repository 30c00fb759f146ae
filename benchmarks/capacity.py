"""SLO capacity: the most concurrent calls per core with e2e p95 <= 1.5 s and every turn answered.

Levels are run in order; at each level both sides run the same phase (``per_slot`` calls per
concurrent caller), the side that goes first alternating from level to level so that a drift
in the machine's load hits both alike. A side stops at its first level over the SLO (or with
an unanswered turn); the sweep stops when both have. A side's capacity is the highest level
below its first failure; per core divides by the machine's cores. At that level the side's
CPU core-seconds per call-minute and memory (USS) per call process are reported.

``through``: every side runs every level up to this one, failed or not, whatever the budget
(must-show reads its 8-call figure off the sweep). ``budget_s``: no later level starts that
would end (judged by the last level's duration) past this many seconds of sweep; a side that
never failed then has a capacity of at least its last level (``bounded_by``), and the output
says so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psutil

from benchmarks.sides import Phase
from voice_ai.pipeline.scenario import Scenario

__all__ = ["capacity_of", "sweep"]


def capacity_of(steps: Sequence[dict[str, Any]], side: str) -> dict[str, Any]:
    """The highest level passed before ``side``'s first failure, and its figures there."""
    best: dict[str, Any] | None = None
    for step in steps:
        result = step.get(side)
        if result is None:
            continue
        if not step[f"{side}_within_slo"]:
            break
        best = step
    cores = psutil.cpu_count() or 1
    ran = [step for step in steps if step.get(side) is not None]
    never_failed = bool(ran) and all(step[f"{side}_within_slo"] for step in ran)
    bounded = {"bounded_by": "levels or time budget (no failure seen)"} if never_failed else {}
    if best is None:
        return {"calls": 0, "calls_per_core": 0.0, **bounded}
    at = best[side]
    return {"calls": best["level"], "calls_per_core": round(best["level"] / cores, 2), **bounded,
            "e2e_p95_ms": at["e2e_ms"].get("p95"),
            "cpu_core_s_per_call_minute": at["cpu_core_s_per_call_minute"],
            "uss_per_call_mb": at["memory_per_call_uss_mb"]}


def sweep(run: Any, sides: Sequence[Any], levels: Sequence[int],
          scenarios: tuple[Scenario, ...], per_slot: int, *, through: int = 0,
          budget_s: float | None = None) -> dict[str, Any]:
    from benchmarks.load import within_slo

    failed: set[str] = set()
    steps: list[dict[str, Any]] = []
    started = time.monotonic()
    last_s = 0.0
    stopped_by = "levels"
    for i, level in enumerate(levels):
        live = [s for s in sides if s.name not in failed or level <= through]
        if not live:
            stopped_by = "slo"
            break
        elapsed = time.monotonic() - started
        if budget_s is not None and level > through and elapsed + last_s * 1.2 > budget_s:
            stopped_by = "time budget"
            break
        order = live if i % 2 == 0 else list(reversed(live))
        phase = Phase(f"capacity {level} calls", level, per_slot, scenarios,
                      ramp_s=level * 0.25)
        t0 = time.monotonic()
        result = run.phase(order, phase, run.args.profile)
        last_s = time.monotonic() - t0
        step: dict[str, Any] = {"level": level, "order": [s.name for s in order],
                                "seconds": round(last_s, 1)}
        for side in live:
            step[side.name] = result[side.name]
            ok = within_slo(result[side.name])
            step[f"{side.name}_within_slo"] = ok
            if not ok:
                failed.add(side.name)
        steps.append(step)
    else:
        if len(failed) == len(sides):
            stopped_by = "slo"
    out = {"slo": {"e2e_p95_ms": 1500, "unanswered_turns": 0}, "per_slot": per_slot,
           "cores": psutil.cpu_count(), "stopped_by": stopped_by, "budget_s": budget_s,
           "seconds": round(time.monotonic() - started, 1),
           "levels": [{"level": s["level"], "order": s["order"], "seconds": s["seconds"],
                       **{f"{n}_e2e_p95_ms": s[n]["e2e_ms"].get("p95")
                          for n in ("ours", "stock") if n in s},
                       **{f"{n}_unanswered": s[n]["turns_unanswered"]
                          for n in ("ours", "stock") if n in s},
                       **{f"{n}_within_slo": s[f"{n}_within_slo"]
                          for n in ("ours", "stock") if n in s}} for s in steps]}
    for side in sides:
        out[side.name] = capacity_of(steps, side.name)
    if "ours" in out and "stock" in out and out["stock"]["calls"]:
        out["ours_over_stock"] = round(out["ours"]["calls"] / out["stock"]["calls"], 2)
    return out
