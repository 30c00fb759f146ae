"""The load benchmark still runs: 2 calls a side through Ray and the baseline, in a subprocess
(it starts its own Ray with cloud-provider settings). Asserts fields and sane values, no timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def _side_ok(side: dict) -> None:
    assert side["calls_attempted"] == 2
    assert 0.0 <= side["success_rate"] <= 1.0
    assert side["calls_completed"] >= 1
    assert side["turns"] >= 1 and side["turns_matched"] >= 1
    assert 1 <= side["concurrency_reached"] <= 2
    for key in ("e2e_ms", "overhead_ms", "provider_applied_ms"):
        stats = side[key]
        assert stats["n"] >= 1 and set(stats) >= {"avg", "p50", "p95", "p99"}
        assert stats["p50"] <= stats["p95"] <= stats["p99"]
    assert side["e2e_ms"]["avg"] > 0
    assert set(side["stages_ms"]) == {"stt", "end_of_turn", "llm_ttft", "tts_ttfb"}
    assert side["setup_warm_ms"]["n"] >= 1 and side["setup_warm_ms"]["avg"] > 0
    assert side["cpu_core_s_per_call_minute"] > 0
    # every call's process was sampled (a call actor's busy title can vanish between samples)
    assert side["memory_per_call_uss_mb"]["n"] >= side["calls_completed"]
    assert 1 <= side["memory_per_call_uss_mb"]["avg"] <= side["memory_per_call_uss_mb"]["max"]
    assert side["memory_peak_total_uss_mb"] >= side["memory_per_call_uss_mb"]["max"]


def test_smoke_run_writes_every_field(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--smoke", "--profile", "zero",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ours / baseline" in proc.stdout
    result = json.loads(out.read_text())
    _side_ok(result["ours"])
    _side_ok(result["baseline"])
    assert result["ours"]["setup_cold_ms"]["n"] == 1
    assert all(v is None or v > 0 for v in result["ratios"].values())
    # the store's baseline code can take this file
    from datetime import UTC, datetime

    from voice_ai.store.baseline import baseline_from_benchmark

    baseline = baseline_from_benchmark(out, now=datetime.now(UTC))
    assert baseline.latency_s["e2e"]["p95"] > 0
    assert baseline.calls == 2
