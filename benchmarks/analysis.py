"""From call records and process usage to one side's numbers (ours, or the stock agent).

A record is a dict with ``started_at``, ``ended_at``, ``outcome``, ``error``, ``setup_s``,
``warm_start`` and ``turns`` (each with ``e2e_s``, the stage timings, ``user_text``):
``CallRecord.to_dict()`` on our side, the same shape from ``benchmarks.stock_agent``.
docs/performance.md defines every number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from benchmarks.procstats import TreeUsage
from benchmarks.stats import summary

__all__ = ["answered_e2e", "max_concurrency", "ms", "side_summary", "store_summary",
           "unanswered_turns", "unheard"]

MB = 1024 * 1024
_STAGES = {"stt": "stt_s", "end_of_turn": "end_of_turn_s", "llm_ttft": "llm_ttft_s",
           "tts_ttfb": "tts_ttfb_s"}


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


def ms(stats: dict[str, float | int]) -> dict[str, float | int]:
    return {k: (round(v * 1000, 1) if k != "n" else v) for k, v in stats.items()}


_UNANSWERED = re.compile(r"did not answer caller turn\(s\) \[([\d, ]*)\]")


def unheard(record: dict[str, Any]) -> set[int]:
    """Lines after which the caller heard no reply within its timeout, as the call's error
    says (``CallSession`` and the stock agent word it the same way). Such a line can still
    have a turn with a livekit-estimated ``e2e_s`` (a reply that began before the caller had
    finished): the caller's own measure decides."""
    found = _UNANSWERED.search(record.get("error") or "")
    return {int(x) for x in found[1].split(",") if x.strip()} if found else set()


def answered_e2e(record: dict[str, Any]) -> list[float]:
    """``e2e_s`` of every caller line the caller heard answered. Turn ``i`` carries the
    caller's own measure of line ``i`` (``CallerSpeechMark``); a turn past the scenario's lines
    (the agent answered one line twice) carries only livekit's estimate and is left out."""
    skip = unheard(record)
    lines = record.get("scenario_turns")
    return [t["e2e_s"] for t in record["turns"]
            if t.get("e2e_s") is not None and t.get("index") not in skip
            and (lines is None or t.get("index", 0) < lines)]


def unanswered_turns(record: dict[str, Any] | None, expected: int) -> int:
    """Caller lines the agent never started to answer (within the scenario's reply timeout);
    a call that did not come back at all counts all its lines."""
    if record is None:
        return expected
    return max(0, expected - len(answered_e2e(record)))


def side_summary(records: Sequence[dict[str, Any]], attempted: int, expected_turns: int,
                 usage: TreeUsage, call_uss: Sequence[int]) -> dict[str, Any]:
    """Everything the table and the JSON show for one side. ``expected_turns``: the caller
    lines of every attempted call together."""
    completed = [r for r in records if r["outcome"] == "completed"]
    turns = [t for r in records for t in r["turns"]]
    e2e = [v for r in records for v in answered_e2e(r)]
    answered = len(e2e)
    call_minutes = sum(r["ended_at"] - r["started_at"] for r in records) / 60
    warm = [r["setup_s"] for r in records if r["warm_start"] and r.get("setup_s") is not None]
    return {
        "calls_attempted": attempted,
        "calls_completed": len(completed),
        "success_rate": len(completed) / attempted if attempted else 0.0,
        "turns_expected": expected_turns,
        "turns_answered": answered,
        "turns_unanswered": max(0, expected_turns - answered),
        "concurrency_reached": max_concurrency(records),
        "e2e_ms": ms(summary(e2e)),
        "stages_ms": {k: ms(summary([t[f] for t in turns if t.get(f) is not None]))
                      for k, f in _STAGES.items()},
        "setup_warm_ms": ms(summary(warm)),
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
        "errors": sorted({r["error"][:160] for r in records if r.get("error")}),
        "heard": _heard(turns),
    }


def _heard(turns: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many answered turns carried a transcript at all (a sanity check of the STT path)."""
    return {"with_text": sum(1 for t in turns if (t.get("user_text") or "").strip()),
            "turns": len(turns)}


def store_summary(ours: dict[str, Any]) -> dict[str, Any]:
    """The top-level ``summary`` that ``voice-ai baseline update --from FILE`` reads."""
    latency: dict[str, dict[str, float]] = {}
    for stage, stats in {"e2e": ours["e2e_ms"], **ours["stages_ms"]}.items():
        if stats.get("n"):
            latency[stage] = {k: stats[k] / 1000 for k in ("avg", "p50", "p95", "p99")}
    return {"calls": ours["calls_attempted"], "success_rate": ours["success_rate"],
            "latency_s": latency}
