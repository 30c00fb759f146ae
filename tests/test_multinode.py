"""Several Ray nodes on one machine (head, a worker declaring one GPU, a CPU worker), run as a
subprocess by ``tests/multinode_scenario.py``: placement, what /metrics and /health/detailed
show, losing a worker node in the middle of calls, and ``voice-ai drain`` moving three live
calls off a worker (issue #18). What made these fail under load, and the fixes, are in
docs/resilience.md ("Failing under load, and fixed"): two caller-host faults, a call line lost
in a drain's hand-over gap (now make-before-break), the resume reserve on the lost node (now
spread over nodes), a new call begun on an idle actor of the lost node (now passed over), and
a drained call whose caller had just spoken when it was handed over (the line lost before it
was a turn; a hand-over now waits for the agent to take the turn)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.multinode_scenario import run_in_subprocess

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]


def _show_logs(calls: dict[str, dict[str, Any]]) -> None:
    """Each call's log lines, printed: pytest shows them with a failing test's report."""
    for call_id, c in calls.items():
        print(f"--- {call_id}: {c.get('outcome')} {c.get('end_reason')}")
        print("\n".join(c.get("log", [])))


@pytest.fixture(scope="module")
def scenario() -> dict[str, Any]:
    result = run_in_subprocess()
    assert "error" not in result, result.get("error")
    return result


def test_whisper_pool_runs_on_the_gpu_node_on_cpu_and_the_store_writer_on_the_head(
        scenario: dict[str, Any]) -> None:
    nodes, placed = scenario["nodes"], scenario["placement"]
    assert placed["stt_whisper"] == nodes["gpu"]
    assert placed["whisper_device"] == "cpu"  # no CUDA here: CTranslate2 counts 0 devices
    assert placed["store_writer"] == nodes["head"]
    assert scenario["health_before"]["gpu_nodes"] == [nodes["gpu"]]


def test_health_and_metrics_show_every_node(scenario: dict[str, Any]) -> None:
    nodes = sorted(scenario["nodes"].values())
    assert scenario["health_before"]["nodes_alive"] == 3
    assert scenario["health_before"]["node_ids"] == nodes
    on_metrics = {n for ns in scenario["metrics_nodes_before"].values() for n in ns}
    assert on_metrics == set(nodes)
    # call actors (warm and active) are spread: every node reports some
    assert scenario["metrics_nodes_before"]["call_actors"] == nodes


def test_admitted_calls_run_on_several_nodes(scenario: dict[str, Any]) -> None:
    on = {c["node"] for c in scenario["calls"].values()}
    assert len(on) >= 2 and on <= set(scenario["nodes"].values())
    assert scenario["nodes"]["cpu"] in on  # so removing it hits live calls


def test_calls_on_the_removed_node_are_resumed_and_every_call_completes(
        scenario: dict[str, Any]) -> None:
    lost = scenario["nodes"]["cpu"]
    on_lost = [cid for cid, c in scenario["calls"].items() if c["node"] == lost]
    assert on_lost  # the removal hit live calls
    _show_logs(scenario["calls"])
    for call_id, c in scenario["calls"].items():
        assert c["outcome"] == "completed", (call_id, c)
        assert c["store"] == ["completed", c["end_reason"]]  # one record per call
        assert c["audit_end"]["outcome"] == "completed"
        if call_id in on_lost:
            (event,) = c["resumed"]  # carried on once, by an actor on a live node
            assert event["cause"] == "actor_lost" and event["turns_restored"] == 1
            assert event["from_node"] == lost and event["to_node"] != lost
            # a warm actor of the resume reserve, kept off the lost node, took the call
            # within 3 s (a cold start took 25 s when the one reserve sat on that node), so
            # both lines the caller said after the loss were answered
            assert event["gap_s"] <= 3.0, event
        # each of the caller's 3 lines heard and answered (under load the VAD may split a
        # line in two turns, "Hello," and the rest: the 23:10 suite had one such call)
        assert c["turns"] >= 3 and all(c["replies"]), (call_id, c["heard"], c["replies"])
        # the caller named the day in its first line only; the reply to "Could it be at ten
        # o'clock?" books that day, so an actor that resumed the call knew what was said
        # before the loss (the receptionist's local engine, docs/agent.md, fills the slots
        # from the context)
        ten = [i for i, heard in enumerate(c["heard"]) if "clock" in heard.lower()]
        assert ten and "tuesday" in c["replies"][ten[0]].lower(), (
            call_id, c["heard"], c["replies"])
        if call_id not in on_lost:
            assert c["resumed"] == [], (call_id, c)


def test_pools_recreate_what_the_lost_node_held(scenario: dict[str, Any]) -> None:
    lost, before, after = (scenario["nodes"]["cpu"], scenario["placement"],
                           scenario["placement_after"])
    assert lost in before.values()  # a pool worker really lived there
    assert lost not in after.values()
    assert after["stt_whisper"] == scenario["nodes"]["gpu"]
    health = scenario["health_after"]
    assert health["nodes_alive"] == 2 and lost not in health["node_ids"]
    assert all(p["status"] == "healthy" for p in health["pools"].values())


def test_new_calls_go_to_the_remaining_nodes_and_complete(scenario: dict[str, Any]) -> None:
    remaining = {scenario["nodes"]["head"], scenario["nodes"]["gpu"]}
    assert scenario["new_calls"]
    _show_logs(scenario["new_calls"])
    for call_id, c in scenario["new_calls"].items():
        assert c["decision"] == "accepted", call_id
        assert c["node"] in remaining
        assert c["outcome"] == "completed", c


def test_voice_ai_drain_moves_three_live_calls_off_a_node_and_drops_none(
        scenario: dict[str, Any]) -> None:
    worker, drain, calls = scenario["nodes"]["gpu"], scenario["drain"], scenario["new_calls"]
    _show_logs(calls)
    assert drain["exit_code"] == 0, drain  # the command saw no call left on the node
    assert len(calls) == 3 and {c["node"] for c in calls.values()} == {worker}  # all 3 there
    for call_id, c in calls.items():
        assert c["outcome"] == "completed", (call_id, c)  # 0 dropped
        assert c["store"] == ["completed", c["end_reason"]]  # one record per call
        # at a turn boundary: no reply of the old actor was cut off by its leg leaving
        assert c["line"] is not None and c["line"]["replies_cut"] == 0, (call_id, c["line"])
        (event,) = c["resumed"]  # moved once, at a turn boundary, to an actor on another node
        assert event["cause"] == "drain" and event["from_node"] == worker, (call_id, event)
        assert event["to_node"] != worker and event["turns_restored"] >= 1
        # the caller's later turns were answered by the actor the call moved to
        assert c["turns"] > event["turns_restored"] and all(c["answered"]), (call_id, c)
        assert event["gap_s"] <= 3.0, event  # a warm actor was ready before the hand-over
    # each call's next actor joined the caller's line before the old one left, so nothing the
    # caller said in the hand-over gap was lost (make before break)
    assert drain["handed_over_total"] == drain["stood_by_total"] == 3, drain
    # the drain retired the worker's idle actors; none was placed there afterwards
    assert drain["call_actor_nodes_after"] and worker not in drain["call_actor_nodes_after"]
    assert drain["draining_nodes"] == [worker]
