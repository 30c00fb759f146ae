"""Admission under a burst, cluster-wide: 3x MAX_CONCURRENT_CALLS arrive at the one dispatcher
actor at once (``tests/multinode_scenario.py``, three Ray nodes); exactly the limit is admitted,
the rest get the busy answer quickly, and /metrics and the audit log count both."""

from __future__ import annotations

from typing import Any

import pytest

from tests.multinode_scenario import LIMIT, run_in_subprocess

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def burst() -> dict[str, Any]:
    result = run_in_subprocess()
    assert "burst" in result, result.get("error")
    return dict(result["burst"])


def test_burst_admits_exactly_the_limit_and_rejects_the_rest(burst: dict[str, Any]) -> None:
    assert burst["sent"] == 3 * LIMIT
    assert burst["accepted"] == LIMIT
    assert burst["rejected"] == 2 * LIMIT
    status = burst["status"]
    assert status["max_concurrent_calls"] == LIMIT
    assert status["active_calls"] == LIMIT  # never more than the limit at once
    assert (status["accepted_total"], status["rejected_total"]) == (LIMIT, 2 * LIMIT)


def test_rejected_callers_get_the_busy_answer_quickly(burst: dict[str, Any]) -> None:
    # from sending the whole burst to the last busy answer; calls are never queued
    assert burst["reject_answer_max_s"] < 2.0


def test_metrics_and_audit_log_count_admitted_and_rejected(burst: dict[str, Any]) -> None:
    assert burst["metrics_started_delta"] == LIMIT
    assert burst["metrics_rejected_delta"] == 2 * LIMIT  # calls_ended_total{outcome="rejected"}
    assert burst["audit_rejected"] == 2 * LIMIT  # CALL_REJECTED lines
