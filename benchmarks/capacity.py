"""SLO capacity: the most concurrent calls per core with e2e p95 <= 1.5 s and every turn answered.

Levels are run in order; at each level both sides run the same phase (``per_slot`` calls per
concurrent caller), the side that goes first alternating from level to level so that a drift
in the machine's load hits both alike. A side stops at its first level over the SLO (or with
an unanswered turn); the sweep stops when both have. A side's capacity is the highest level
below its first failure; per core divides by the machine's cores. At that level the side's
CPU core-seconds per call-minute and memory (USS) per call process are reported.
"""

from __future__ import annotations

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
    if best is None:
        return {"calls": 0, "calls_per_core": 0.0}
    at = best[side]
    return {"calls": best["level"], "calls_per_core": round(best["level"] / cores, 2),
            "e2e_p95_ms": at["e2e_ms"].get("p95"),
            "cpu_core_s_per_call_minute": at["cpu_core_s_per_call_minute"],
            "uss_per_call_mb": at["memory_per_call_uss_mb"]}


def sweep(run: Any, sides: Sequence[Any], levels: Sequence[int],
          scenarios: tuple[Scenario, ...], per_slot: int) -> dict[str, Any]:
    from benchmarks.load import within_slo

    failed: set[str] = set()
    steps: list[dict[str, Any]] = []
    for i, level in enumerate(levels):
        live = [s for s in sides if s.name not in failed]
        if not live:
            break
        order = live if i % 2 == 0 else list(reversed(live))
        phase = Phase(f"capacity {level} calls", level, per_slot, scenarios,
                      ramp_s=level * 0.25)
        result = run.phase(order, phase, run.args.profile)
        step: dict[str, Any] = {"level": level, "order": [s.name for s in order]}
        for side in live:
            step[side.name] = result[side.name]
            ok = within_slo(result[side.name])
            step[f"{side.name}_within_slo"] = ok
            if not ok:
                failed.add(side.name)
        steps.append(step)
    out = {"slo": {"e2e_p95_ms": 1500, "unanswered_turns": 0}, "per_slot": per_slot,
           "cores": psutil.cpu_count(),
           "levels": [{"level": s["level"], "order": s["order"],
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
