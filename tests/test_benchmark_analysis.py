"""The benchmark's arithmetic, on hand-made records: unanswered turns, the SLO capacity rule,
py-spy summaries and the stock agent's turn pairing. No Ray, no processes."""

from __future__ import annotations

from typing import Any

import pytest
from livekit.agents.llm import ChatMessage

from benchmarks.analysis import answered_e2e, side_summary, unanswered_turns
from benchmarks.capacity import capacity_of, sweep
from benchmarks.procstats import TreeUsage
from benchmarks.profiling import area_of, summarise
from benchmarks.stock_agent import _turns
from voice_ai.pipeline.transport import CallerSpeechMark

pytestmark = pytest.mark.unit


def record(e2e: list[float | None], *, error: str = "") -> dict[str, Any]:
    return {"started_at": 0.0, "ended_at": 60.0, "outcome": "failed" if error else "completed",
            "error": error, "setup_s": 0.05, "warm_start": True,
            "turns": [{"index": i, "e2e_s": v, "user_text": "hi", "stt_s": 0.1}
                      for i, v in enumerate(e2e)]}


def test_unanswered_turns_count_lines_without_a_reply() -> None:
    assert unanswered_turns(record([0.8, None, 0.9]), expected=3) == 1
    assert unanswered_turns(record([0.8]), expected=3) == 2  # replies never came
    assert unanswered_turns(None, expected=4) == 4  # the call did not come back
    # a reply that began before the caller finished: livekit estimated an e2e, the caller
    # heard nothing after its line
    early = record([2.3, 0.9], error="agent did not answer caller turn(s) [0]")
    assert unanswered_turns(early, expected=2) == 1
    # one line answered twice: the extra turn has no caller mark of its own
    twice = record([0.8, 0.7, 1.9]) | {"scenario_turns": 2}
    assert unanswered_turns(twice, expected=2) == 0
    assert answered_e2e(twice) == [0.8, 0.7]


def test_side_summary_counts_every_expected_line() -> None:
    usage = TreeUsage(cpu_s=12.0, wall_s=60.0, peak_total_uss=300 * 2**20)
    side = side_summary([record([0.7, 0.9]), record([1.1], error="call dropped")],
                        attempted=3, expected_turns=7, usage=usage,
                        call_uss=[100 * 2**20, 120 * 2**20])
    assert (side["turns_expected"], side["turns_answered"], side["turns_unanswered"]) == (7, 3, 4)
    assert side["calls_completed"] == 1 and side["success_rate"] == pytest.approx(1 / 3)
    assert side["e2e_ms"]["n"] == 3 and side["e2e_ms"]["max"] == 1100.0
    assert side["cpu_core_s_per_call_minute"] == 6.0  # 12 core-s over 2 call-minutes
    assert side["memory_per_call_uss_mb"] == {"avg": 110.0, "max": 120.0, "n": 2}


def _step(level: int, p95: float, unanswered: int = 0) -> dict[str, Any]:
    side = {"e2e_ms": {"p95": p95}, "turns_unanswered": unanswered,
            "cpu_core_s_per_call_minute": 3.0, "memory_per_call_uss_mb": {"avg": 90.0}}
    ok = p95 <= 1500 and unanswered == 0
    return {"level": level, "ours": side, "ours_within_slo": ok}


def test_capacity_is_the_last_level_before_the_first_failure() -> None:
    steps = [_step(2, 900), _step(4, 1100), _step(6, 1600), _step(8, 1200)]
    cap = capacity_of(steps, "ours")
    assert cap["calls"] == 4 and cap["e2e_p95_ms"] == 1100
    assert capacity_of([_step(2, 900, unanswered=1)], "ours")["calls"] == 0


class _Side:
    def __init__(self, name: str) -> None:
        self.name = name


class _FakeRun:
    """Plays a sweep: each side's p95 at a level from a table; records who ran in which order."""

    def __init__(self, p95: dict[str, dict[int, float]]) -> None:
        self.p95 = p95
        self.ran: list[tuple[int, list[str]]] = []
        self.args = type("Args", (), {"profile": "realistic"})()

    def phase(self, sides: list[_Side], phase: Any, profile: str) -> dict[str, Any]:
        self.ran.append((phase.calls, [s.name for s in sides]))
        return {s.name: {"e2e_ms": {"p95": self.p95[s.name][phase.calls]},
                         "turns_unanswered": 0, "cpu_core_s_per_call_minute": 1.0,
                         "memory_per_call_uss_mb": {"avg": 90.0}} for s in sides}


def test_sweep_alternates_sides_stops_each_at_its_failure_and_runs_through_a_level() -> None:
    run = _FakeRun({"ours": {4: 900, 8: 1600, 12: 1700, 16: 1800},
                    "stock": {4: 1600, 8: 1400, 12: 1300, 16: 1200}})
    out = sweep(run, [_Side("ours"), _Side("stock")], [4, 8, 12, 16], (), 2, through=8,
                budget_s=0.0)  # the budget never skips a level up to ``through``
    # both run level 8 although stock failed at 4 (must-show reads its 8-call figure there);
    # the side going first alternates; after 8 both have failed and the sweep stops
    assert run.ran == [(4, ["ours", "stock"]), (8, ["stock", "ours"])]
    assert out["stopped_by"] == "slo"
    assert out["ours"]["calls"] == 4 and out["stock"]["calls"] == 0
    # a side that never failed: its capacity is only a lower bound, and says so
    run = _FakeRun({"ours": {4: 900, 8: 1000}, "stock": {4: 1600, 8: 1600}})
    out = sweep(run, [_Side("ours"), _Side("stock")], [4, 8], (), 2)
    assert run.ran == [(4, ["ours", "stock"]), (8, ["ours"])]
    assert out["ours"]["calls"] == 8 and "bounded_by" in out["ours"]
    assert "ours_over_stock" not in out  # no ratio against a capacity of 0


def test_profile_summary_attributes_samples_to_areas() -> None:
    lines = [
        "run (asyncio/events.py:80);_forward (livekit/agents/voice/agent_activity.py:10) 6",
        "run (asyncio/events.py:80);push (livekit/rtc/audio_resampler.py:5) 3",
        "run (asyncio/events.py:80);__anext__ (voice_ai/pipeline/simulated.py:70) 1",
        "not a sample line",
    ]
    out = summarise(lines)
    assert out["samples"] == 10
    assert out["by_area"][0] == {"what": "livekit-agents voice pipeline", "share": 0.6,
                                 "samples": 6}
    assert {r["what"] for r in out["by_area"]} >= {"simulated caller (test harness)",
                                                   "livekit rtc (audio frames, resampling)"}
    assert area_of("/x/site-packages/onnxruntime/capi/session.py") == "Silero VAD / onnxruntime"


def test_stock_turns_pair_caller_lines_with_replies() -> None:
    def msg(role: str, text: str, metrics: dict[str, float]) -> ChatMessage:
        return ChatMessage(role=role, content=[text], metrics=metrics)  # type: ignore[arg-type]

    messages = [
        msg("assistant", "Hello, Bright Dental.", {}),  # the greeting answers nothing
        msg("user", "Hi, are you open?", {"transcription_delay": 0.1,
                                          "end_of_turn_delay": 0.4}),
        msg("assistant", "Sure.", {"llm_node_ttft": 0.3, "tts_node_ttfb": 0.09}),
    ]
    marks = [CallerSpeechMark(ended_speaking_at=10.0, text="Hi, are you open?",
                              agent_audio_at=10.8)]
    (turn,) = _turns(messages, marks)
    assert turn["e2e_s"] == pytest.approx(0.8)
    assert (turn["stt_s"], turn["end_of_turn_s"], turn["llm_ttft_s"]) == (0.1, 0.4, 0.3)
    assert turn["user_text"] == "Hi, are you open?" and turn["agent_text"] == "Sure."


def test_memory_floor_counts_the_private_pages_a_process_writes() -> None:
    from benchmarks.memory_floor import uss_mb

    before = uss_mb()
    held = bytearray(32 * 2**20)  # zeroed pages, written: private to this process
    for i in range(0, len(held), 4096):
        held[i] = 1
    assert uss_mb() - before >= 30
    del held


def test_memory_floor_refuses_a_single_actor() -> None:
    from benchmarks.memory_floor import main

    with pytest.raises(SystemExit) as exc:  # one actor would count shared libraries as its own
        main(["--actors", "1"])
    assert exc.value.code == 2
