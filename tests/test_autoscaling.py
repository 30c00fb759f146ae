"""The system on Ray's own autoscaler (the fake multi-node provider, one machine), run as a
subprocess by ``tests/autoscaling_scenario.py``: a burst beyond the head's call slots launches a
worker node, a call runs there, admission still admits exactly MAX_CONCURRENT_CALLS, and the
node is removed once the burst is over.

The scenario (~45 s alone on the 2-core machine) runs in the background of ``make test``
from the session's start (``tests/background.py``); ``make test-autoscaling`` runs it on its
own with the policy's unit tests (docs/capacity.md, "The autoscaling test")."""

from __future__ import annotations

from typing import Any

import pytest

from tests.autoscaling_scenario import ARRIVALS, LIMIT, run_in_subprocess

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def scenario() -> dict[str, Any]:
    result = run_in_subprocess()
    assert "error" not in result, result.get("error")
    return result


def test_admission_admits_exactly_the_limit_of_the_burst(scenario: dict[str, Any]) -> None:
    decisions = scenario["decisions"]
    assert decisions.count("accepted") == LIMIT
    assert len(decisions) - decisions.count("accepted") == ARRIVALS - LIMIT
    assert scenario["status"]["accepted_total"] == LIMIT


def test_the_burst_launches_a_worker_node_and_a_call_runs_there(
        scenario: dict[str, Any]) -> None:
    assert scenario["nodes_before"] == 1
    assert scenario["most_nodes"] == 2
    calls = scenario["calls"]
    assert len(calls) == LIMIT
    assert all(c["outcome"] == "completed" and c["turns"] >= 1 for c in calls.values()), calls
    on_worker = [c for c in calls.values() if not c["on_head"]]
    assert on_worker, calls  # the head has 2 call slots: the third call needed the new node


def test_the_idle_node_is_removed_after_the_burst(scenario: dict[str, Any]) -> None:
    assert scenario["scaled_down"], scenario.get("scale_down_error")
    assert scenario["nodes_after"] == 1
