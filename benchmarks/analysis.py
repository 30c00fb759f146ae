"""From call records, applied provider latency and process usage to one side's numbers.

Orchestration overhead of a turn (docs/performance.md)::

    floor    = max(vad_silence + stt_applied, endpointing_min_delay) + llm_applied + tts_applied
    overhead = e2e - floor

``vad_silence`` and ``endpointing_min_delay`` are configuration (OPTIMIZATION_LEVEL), the
``*_applied`` values are what the simulators actually slept for that turn (benchmarks/applied.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.applied import AppliedLatency, tag_of
from benchmarks.procstats import TreeUsage
from benchmarks.stats import summary

__all__ = ["max_concurrency", "side_summary", "store_summary", "turn_overheads"]

MB = 1024 * 1024
_STAGES = {"stt": "stt_s", "end_of_turn": "end_of_turn_s", "llm_ttft": "llm_ttft_s",
           "tts_ttfb": "tts_ttfb_s"}


def turn_overheads(turn: dict[str, Any], applied: dict[str, AppliedLatency],
                   endpointing: tuple[float, float]) -> dict[str, float] | None:
    """Overhead of one turn, in total and per stage; None when the turn is not fully matched."""
    tag = tag_of(turn.get("user_text", ""))
    a = applied.get(tag) if tag else None
    e2e = turn.get("e2e_s")
    if a is None or not a.complete or e2e is None:
        return None
    assert a.stt_s is not None and a.llm_total_s is not None and a.tts_s is not None
    vad_silence, min_delay = endpointing
    floor = max(vad_silence + a.stt_s, min_delay) + a.llm_total_s + a.tts_s
    out = {"total": e2e - floor, "provider_s": a.stt_s + a.llm_total_s + a.tts_s}
    if turn.get("stt_s") is not None:
        out["stt"] = turn["stt_s"] - vad_silence - a.stt_s
    if turn.get("llm_ttft_s") is not None and a.llm_first_s is not None:
        out["llm"] = turn["llm_ttft_s"] - a.llm_first_s
    if turn.get("tts_ttfb_s") is not None:
        out["tts"] = turn["tts_ttfb_s"] - a.tts_s
    return out


def max_concurrency(records: Sequence[dict[str, Any]]) -> int:
    """Most calls in progress at one instant (from the records' start and end times)."""
    events = sorted([(r["started_at"], 1) for r in records] + [(r["ended_at"], -1)
                                                               for r in records],
                    key=lambda e: (e[0], e[1]))
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def _ms(stats: dict[str, float | int]) -> dict[str, float | int]:
    return {k: (round(v * 1000, 2) if k != "n" else v) for k, v in stats.items()}


def side_summary(records: Sequence[dict[str, Any]], attempted: int,
                 applied: dict[str, AppliedLatency], endpointing: tuple[float, float],
                 usage: TreeUsage, call_uss: Sequence[int]) -> dict[str, Any]:
    """Everything the table and the JSON show for one side (ours or the baseline)."""
    completed = [r for r in records if r["outcome"] == "completed"]
    turns = [t for r in records for t in r["turns"]]
    e2e = [t["e2e_s"] for t in turns if t.get("e2e_s") is not None]
    over = [o for t in turns if (o := turn_overheads(t, applied, endpointing)) is not None]
    call_minutes = sum(r["ended_at"] - r["started_at"] for r in records) / 60
    warm = [r["setup_s"] for r in records if r["warm_start"] and r.get("setup_s") is not None]
    return {
        "calls_attempted": attempted,
        "calls_completed": len(completed),
        "success_rate": len(completed) / attempted if attempted else 0.0,
        "turns": len(turns),
        "turns_matched": len(over),
        "concurrency_reached": max_concurrency(records),
        "e2e_ms": _ms(summary(e2e)),
        "stages_ms": {k: _ms(summary([t[f] for t in turns if t.get(f) is not None]))
                      for k, f in _STAGES.items()},
        "overhead_ms": _ms(summary([o["total"] for o in over])),
        "overhead_by_stage_ms": {k: _ms(summary([o[k] for o in over if k in o]))
                                 for k in ("stt", "llm", "tts")},
        "provider_applied_ms": _ms(summary([o["provider_s"] for o in over])),
        "setup_warm_ms": _ms(summary(warm)),
        "call_minutes": round(call_minutes, 3),
        "cpu_core_s": round(usage.cpu_s, 2),
        "cpu_core_s_per_call_minute": round(usage.cpu_s / call_minutes, 2) if call_minutes
        else None,
        "memory_per_call_uss_mb": {
            "avg": round(sum(call_uss) / len(call_uss) / MB, 1) if call_uss else None,
            "max": round(max(call_uss) / MB, 1) if call_uss else None,
            "n": len(call_uss),
        },
        "memory_peak_total_uss_mb": round(usage.peak_total_uss / MB, 1),
        "memory_total_per_concurrent_call_mb": round(
            usage.peak_total_uss / MB / max(1, max_concurrency(records)), 1),
        "processes_seen": usage.processes,
        "cpu_core_s_by_process": {k: round(v, 1) for k, v in usage.cpu_s_by_kind.items()
                                  if v >= 0.05},
        "errors": sorted({r["error"][:120] for r in records if r.get("error")}),
    }


def store_summary(ours: dict[str, Any]) -> dict[str, Any]:
    """The top-level ``summary`` that ``voice-ai baseline update --from FILE`` reads."""
    latency: dict[str, dict[str, float]] = {}
    for stage, stats in {"e2e": ours["e2e_ms"], **ours["stages_ms"]}.items():
        if stats.get("n"):
            latency[stage] = {k: stats[k] / 1000 for k in ("avg", "p50", "p95", "p99")}
    return {"calls": ours["calls_attempted"], "success_rate": ours["success_rate"],
            "latency_s": latency}
