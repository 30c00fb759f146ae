"""The load benchmark still runs: 2 calls a side, ours through Ray and the stock agent one
process per call, in a subprocess (it starts its own Ray with cloud providers pointed at the
simulators). Asserts what the run must show, not timings: every call and turn accounted for,
the simulators heard each caller line as its own text on both sides, the stock agent did not
import our pipeline, and the file feeds ``voice-ai baseline update``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests import background

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMOKE_LINES = 3  # opening_hours (1 line) + book_appointment (2 lines)


def _side_ok(side: dict[str, Any], *, all_answered: bool) -> None:
    assert side["calls_attempted"] == 2
    assert side["turns_expected"] == SMOKE_LINES
    # every caller line is accounted for: answered (the caller heard a reply after it) or not
    assert side["turns_answered"] + side["turns_unanswered"] == SMOKE_LINES
    assert side["turns_answered"] >= 1
    if all_answered:
        assert side["calls_completed"] == 2 and side["turns_unanswered"] == 0, side["errors"]
    stats = side["e2e_ms"]
    assert stats["n"] == side["turns_answered"]
    assert 0 < stats["p50"] <= stats["p95"] <= stats["max"]
    assert set(side["stages_ms"]) == {"stt", "end_of_turn", "llm_ttft", "tts_ttfb"}
    assert side["heard"]["with_text"] == side["heard"]["turns"] >= 1
    # each caller line was recognised by its audio, so it got its own words
    assert side["lines_recognised"] == SMOKE_LINES
    assert side["cpu_core_s_per_call_minute"] > 0
    mem = side["memory_per_call_uss_mb"]
    assert mem["n"] >= side["calls_completed"] and 1 <= mem["avg"] <= mem["max"]


def test_smoke_run_shows_both_sides() -> None:
    run = background.result("benchmark_smoke")  # ``python -m benchmarks.load --mode smoke``
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ours / stock" in run.stdout and "load average" in run.stdout
    result = run.data
    assert result is not None, run.json_or_error()
    out = run.out
    (phase,) = result["phases"]
    # the yardstick must work; whether ours answers every turn is the benchmark's finding
    # (the must-show runs), not a condition for the benchmark to run
    _side_ok(phase["ours"], all_answered=False)
    _side_ok(phase["stock"], all_answered=True)
    assert all(v is None or v > 0 for v in phase["ratios"].values())
    assert result["machine"]["load_avg_before"] and result["machine"]["load_avg_after"]
    # the stock agent ran livekit's own session: only our transport and scenario came along
    imported = result["stock_imports_of_ours"]
    assert "voice_ai.pipeline.simulated" in imported
    assert not [m for m in imported if m.startswith(("voice_ai.providers", "actors",
                                                     "voice_ai.pipeline.session",
                                                     "voice_ai.pipeline.runtime"))]

    from voice_ai.store.baseline import baseline_from_benchmark

    baseline = baseline_from_benchmark(out, now=datetime.now(UTC))
    assert baseline.latency_s["e2e"]["p95"] > 0
    assert baseline.calls == 2
