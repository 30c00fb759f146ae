"""benchmarks/failover.py: 10 concurrent calls during a Deepgram outage (its own Ray, so a
subprocess). The bound: no more than BREAKER_MIN_REQUESTS turns cluster-wide hit the failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def test_failures_before_breaker_opens_are_bounded_and_every_turn_is_answered() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.failover", "--calls", "10", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 1 <= r["deepgram_failures_before_open"] <= r["breaker_min_requests"]
    # every caller heard an answer: the whisper fallback kept up (short encoder window,
    # batched requests, call actors yielding CPU to the pools)
    assert r["unanswered_turns"] == 0, r["outage_errors"]
    assert r["outage_calls_completed"] == r["calls"], r["outage_errors"]
    assert r["outage_stt_served_by"].get("whisper", 0) == r["turns_during_outage"] == r["calls"]
    assert r["outage_stt_served_by"].get("deepgram", 0) == 0  # nothing served by Deepgram
    assert r["recovery_stt_served_by"].get("deepgram", 0) >= 1
    assert r["transitions"][0] == "closed->open"
