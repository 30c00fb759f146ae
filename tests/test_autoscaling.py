"""The system on Ray's own autoscaler (the fake multi-node provider, one machine), run as a
subprocess by ``tests/autoscaling_scenario.py``: a burst beyond the head's call slots launches a
worker node, a call runs there, admission still admits exactly MAX_CONCURRENT_CALLS, and the
node is removed once the burst is over.

Not part of ``make test``: starting a Ray cluster with its autoscaler, the system with real
local models, a burst that launches a node and the wait for its removal takes minutes on the
2-core machine (see docs/capacity.md, "The autoscaling test"), well over the suite's budget for
one test. ``make test-autoscaling`` runs it (VOICE_AI_AUTOSCALING_TEST=1); without that the
module is skipped, saying so."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.autoscaling_scenario import ARRIVALS, LIMIT, run_in_subprocess

pytestmark = [
    pytest.mark.ray, pytest.mark.integration, pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("VOICE_AI_AUTOSCALING_TEST") != "1",
                       reason="minutes on 2 cores: run by make test-autoscaling"),
]


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


@pytest.mark.xfail(strict=True, reason=(
    "not yet: in the run of 2026-11-30 09:49 the worker node was still up 90 s after the calls "
    "with one call_slot in use (a warm spare). Likely cause: CALL_ACTOR_PLACEMENT=pack is Ray's "
    "DEFAULT (hybrid) strategy, which leaves a node once its busiest resource is over 50 %; the "
    "head's CPU is 80 % taken by the pools (1.6 of 2), so a rotated spare's replacement goes to "
    "the worker again. Next step: a head with room (CPU 4) in this scenario, and a harder pack "
    "for spares on a real cluster (docs/capacity.md)"))
def test_the_idle_node_is_removed_after_the_burst(scenario: dict[str, Any]) -> None:
    assert scenario["scaled_down"], scenario.get("scale_down_error")
    assert scenario["nodes_after"] == 1
