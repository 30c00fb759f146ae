"""Reports over a database with known contents print exactly the figures worked out by hand."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.test_store import make_call, make_turn
from voice_ai.cli.store_cmds import register
from voice_ai.records import EndReason
from voice_ai.store import CallStore, EventKind
from voice_ai.store.stats import peak_concurrency, percentile

pytestmark = pytest.mark.unit

DAY = "2026-03-10"


def at(hhmm: str, day: str = DAY) -> float:
    """Local time, as the reports bucket hours in local time."""
    return datetime.fromisoformat(f"{day}T{hhmm}").timestamp()


# (start, minutes, end reason, [(e2e_s, fallback)]) for the day under test.
CALLS = [
    ("09:05", 4, EndReason.CALLER_HANGUP, [(0.8, False), (0.9, False)]),
    ("09:20", 3, EndReason.CALLER_HANGUP, [(1.0, False), (1.1, False)]),
    ("09:40", 2, EndReason.ERROR, [(2.5, False)]),
    ("10:10", 5, EndReason.CALLER_HANGUP, [(0.7, False), (1.2, False)]),
    ("10:50", 1, EndReason.REJECTED_BUSY, []),
    ("14:00", 10, EndReason.CALLER_HANGUP, [(1.3, True), (0.95, False)]),
    ("14:02", 10, EndReason.CALLER_HANGUP, [(1.05, False), (1.15, False)]),
    ("14:05", 10, EndReason.CALLER_HANGUP, [(1.4, False), (0.85, False)]),
    ("14:30", 5, EndReason.CALLER_HANGUP,
     [(1.6, False), (1.0, False), (0.9, False), (1.35, False), (0.75, False)]),
    ("16:00", 3, EndReason.AGENT_HANGUP, [(1.45, True), (1.25, True)]),
]
# By hand, the 20 end-to-end latencies of the day, sorted:
#  0.7 0.75 0.8 0.85 0.9 0.9 0.95 1.0 1.0 1.05 1.1 1.15 1.2 1.25 1.3 1.35 1.4 1.45 1.6 2.5
# sum 23.2 -> avg 1.160; nearest rank: p50 = 10th = 1.05, p95 = 19th = 1.6, p99 = 20th = 2.5.
# STT 0.2 on every turn but one (not measured): 19 turns. LLM first token 0.4, except 2.0 on the
# failed call's turn: avg (19 * 0.4 + 2.0) / 20 = 0.48, p95 = 19th = 0.4, p99 = 20th = 2.0.
# Success rate: 8 completed / (8 + 1 failed) = 88.9 % (the busy rejection is left out).
# Busiest hour: 14:00-15:00 with 4 calls. Peak concurrency: 3, at 14:05 (14:00, 14:02, 14:05).


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    found = {"db": tmp_path / "data" / "voice_ai.db", "data": tmp_path / "data",
             "baseline": tmp_path / "data" / "baseline.json"}
    monkeypatch.setenv("DB_PATH", str(found["db"]))
    monkeypatch.setenv("DATA_DIR", str(found["data"]))
    monkeypatch.setenv("BASELINE_PATH", str(found["baseline"]))
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    monkeypatch.setenv("MAX_CONCURRENT_CALLS", "4")
    return found


@pytest.fixture
def known_db(env: dict[str, Path]) -> Path:
    store = CallStore(env["db"])
    first_turn = True
    for n, (start, minutes, reason, turns) in enumerate(CALLS):
        t0 = at(start)
        timings = []
        for i, (e2e, fallback) in enumerate(turns):
            timings.append(make_turn(
                i, t0 + 10 * (i + 1), e2e_s=e2e, fallback_used=fallback,
                stt_s=None if first_turn else 0.2,
                llm_ttft_s=2.0 if reason is EndReason.ERROR else 0.4,
            ))
            first_turn = False
        store.write_call(make_call(f"call-{n}", started_at=t0, duration_s=minutes * 60,
                                   end_reason=reason, turns=tuple(timings)))
    # Just outside the day: must not count in the daily report.
    for cid, t0 in (("before", at("23:50", "2026-03-09")), ("after", at("00:10", "2026-03-11"))):
        store.write_call(make_call(cid, started_at=t0, turns=(make_turn(0, t0 + 5, e2e_s=9.9),)))
    for hhmm, kind, component in (
        ("09:30", EventKind.ERROR, "stt"), ("14:20", EventKind.ERROR, "stt"),
        ("16:05", EventKind.ERROR, "llm"), ("14:21", EventKind.BREAKER, "deepgram"),
        ("10:50", EventKind.REJECTION, "dispatcher"),
    ):
        store.write_event(kind, component=component, detail="test", ts=at(hhmm))
    store.write_event(EventKind.ERROR, component="tts", detail="test",
                      ts=at("01:00", "2026-03-11"))
    store.close()
    return env["db"]


def cli(*args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_percentiles_are_nearest_rank() -> None:
    ten = [float(v) for v in range(1, 11)]
    assert (percentile(ten, 50), percentile(ten, 95), percentile(ten, 99)) == (5.0, 10.0, 10.0)
    assert percentile([3.0], 50) == 3.0
    twenty = [float(v) for v in range(1, 21)]
    assert (percentile(twenty, 95), percentile(twenty, 99)) == (19.0, 20.0)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_back_to_back_calls_do_not_overlap() -> None:
    assert peak_concurrency([(0, 10), (10, 20), (20, 30)]) == (1, 0)
    assert peak_concurrency([(0, 10), (5, 20), (6, 7)]) == (3, 6)
    assert peak_concurrency([]) == (0, None)


def test_daily_report_markdown_shows_the_hand_computed_figures(
    known_db: Path, env: dict[str, Path]
) -> None:
    code, out, err = cli("report", "daily", "--date", DAY, "--format", "markdown")
    assert code == 0, err
    lines = set(out.splitlines())
    expected = {
        f"# Daily report, {DAY} 00:00 to 2026-03-11 00:00",
        "| calls | 10 |", "| completed | 8 |", "| failed | 1 |", "| rejected (busy) | 1 |",
        "| success rate | 88.9 % |", "| turns | 20 |",
        "| calls using fallback | 2 (22.2 %) |", "| turns using fallback | 3 (15.0 %) |",
        "| end to end | 20 | 1.160 | 1.050 | 1.600 | 2.500 |",
        "| end of turn | 20 | 0.300 | 0.300 | 0.300 | 0.300 |",
        "| STT | 19 | 0.200 | 0.200 | 0.200 | 0.200 |",
        "| LLM first token | 20 | 0.480 | 0.400 | 0.400 | 2.000 |",
        "| TTS first byte | 20 | 0.100 | 0.100 | 0.100 | 0.100 |",
        "| stt | 2 |", "| llm | 1 |", "| (breaker events) | 1 |", "| (rejection events) | 1 |",
        "| busiest hour | 14:00-15:00 (4 calls) |",
        f"| peak concurrency | 3 at {DAY} 14:05 |",
        "| MAX_CONCURRENT_CALLS | 4 |", "| headroom | 1 (25.0 %) |",
        "_no baseline stored (run: voice-ai baseline update)_",
    }
    assert expected <= lines, expected - lines
    assert "| tts |" not in out  # the next day's error stays out
    chart = env["data"] / "reports" / f"daily-{DAY}.png"
    assert f"chart written: {chart}" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000


def test_daily_report_json_and_table(known_db: Path, tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    code, out, err = cli("report", "daily", "--date", DAY, "--format", "json",
                         "--chart", str(chart))
    assert code == 0, err
    data = json.loads(out)
    assert data["calls"] == 10 and data["success_rate"] == 8 / 9
    e2e = data["latency_s"]["e2e"]
    assert (e2e["count"], e2e["p50"], e2e["p95"], e2e["p99"]) == (20, 1.05, 1.6, 2.5)
    assert e2e["avg"] == pytest.approx(1.16)
    assert data["latency_s"]["stt"]["count"] == 19
    assert data["busiest_hour"] == {"hour": 14, "calls": 4}
    assert (data["peak_concurrency"], data["headroom"]) == (3, 1)
    assert data["errors_by_component"] == {"stt": 2, "llm": 1}
    assert data["fallback"] == {"calls": 2, "turns": 3}
    assert chart.is_file() and f"chart written: {chart}" in err

    code, out, _ = cli("report", "daily", "--date", DAY, "--no-chart")
    assert code == 0
    for figure in ("88.9 %", "14:00-15:00 (4 calls)", "1.160", "1.050", "1.600", "2.500"):
        assert figure in out
    assert "chart written" not in out


def test_performance_report_covers_the_hour_before_until(known_db: Path) -> None:
    # 13:45-14:45: the four calls of 14:xx, all completed. Their 11 latencies sorted:
    # 0.75 0.85 0.9 0.95 1.0 1.05 1.15 1.3 1.35 1.4 1.6; sum 12.3 -> avg 1.118;
    # p50 = 6th = 1.05, p95 = 11th = 1.6, p99 = 11th = 1.6.
    code, out, err = cli("report", "performance", "--last-hour",
                         "--until", f"{DAY}T14:45", "--format", "markdown")
    assert code == 0, err
    for line in ("| calls | 4 |", "| success rate | 100.0 % |",
                 "| end to end | 11 | 1.118 | 1.050 | 1.600 | 1.600 |",
                 "| stt | 1 |", "| (breaker events) | 1 |"):
        assert line in out.splitlines(), line
    assert "busiest hour" not in out


def test_capacity_report_over_two_days(known_db: Path) -> None:
    code, out, err = cli("report", "capacity", "--days", "2",
                         "--until", "2026-03-11T00:00", "--format", "markdown")
    assert code == 0, err
    for line in ("| calls | 11 |", "| calls per day | 5.5 |",
                 "| busiest day | 2026-03-10 (10 calls) |",
                 "| busiest hour | 14:00-15:00 (4 calls) |",
                 "| peak concurrency | 3 at 2026-03-10 14:05 |", "| headroom | 1 (25.0 %) |"):
        assert line in out.splitlines(), line


def test_reports_compare_with_a_baseline_from_a_benchmark(
    known_db: Path, env: dict[str, Path], tmp_path: Path
) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"profile": "realistic", "summary": {
        "calls": 50, "success_rate": 0.99,
        "e2e_avg_ms": 1000, "e2e_p95_ms": 1400, "e2e_p99_ms": 2000, "stt_p95_ms": 250,
    }}))
    code, out, err = cli("baseline", "update", "--from", str(bench))
    assert code == 0, err
    stored = json.loads(env["baseline"].read_text())
    assert stored["schema"] == "voice-ai-baseline/1" and stored["source"] == "benchmark:bench.json"
    assert stored["latency_s"] == {"e2e": {"avg": 1.0, "p95": 1.4, "p99": 2.0},
                                   "stt": {"p95": 0.25}}
    code, out, err = cli("report", "daily", "--date", DAY, "--format", "markdown", "--no-chart")
    assert code == 0, err
    for line in ("| end to end avg (s) | 1.000 | 1.160 | +0.160 (+16.0 %) |",
                 "| end to end p95 (s) | 1.400 | 1.600 | +0.200 (+14.3 %) |",
                 "| end to end p99 (s) | 2.000 | 2.500 | +0.500 (+25.0 %) |",
                 "| success rate | 99.0 % | 88.9 % | -10.1 pts |"):
        assert line in out.splitlines(), line


def test_baseline_from_the_database_uses_recent_calls(env: dict[str, Path]) -> None:
    store = CallStore(env["db"])
    now = time.time()
    store.write_call(make_call("recent", started_at=now - 3600, turns=(
        make_turn(0, now - 3500, e2e_s=0.9), make_turn(1, now - 3400, e2e_s=1.1))))
    store.close()
    code, out, err = cli("baseline", "update")
    assert code == 0, err
    assert "end to end avg 1.000 s, p50 0.900 s, p95 1.100 s, p99 1.100 s" in out
    stored = json.loads(env["baseline"].read_text())
    assert stored["calls"] == 1 and stored["source"] == "database:last 7 days"
    assert stored["latency_s"]["e2e"]["p95"] == 1.1


@pytest.mark.parametrize(("args", "message"), [
    (["report", "daily", "--format", "xml"], "Invalid value for '--format'"),
    (["report", "daily", "--date", "yesterday"], "not a YYYY-MM-DD date: 'yesterday'"),
    (["report", "performance", "--until", "soon"], "not an ISO date/time: 'soon'"),
])
def test_bad_options_are_usage_errors(env: dict[str, Path], args: list[str], message: str) -> None:
    code, out, err = cli(*args)
    assert code == 2
    assert message in err and "Traceback" not in out + err


def test_missing_and_corrupt_databases_are_one_line_errors(env: dict[str, Path]) -> None:
    for args in (["report", "daily", "--no-chart"], ["report", "performance", "--last-hour"],
                 ["report", "capacity", "--last-month"], ["baseline", "update"]):
        code, out, err = cli(*args)
        assert (code, err.strip()) == (1, f"error: database not found: {env['db']}"), args
    env["data"].mkdir(parents=True, exist_ok=True)
    env["db"].write_text("garbage, not SQLite\n")
    code, out, err = cli("report", "performance", "--last-hour")
    assert (code, err.strip()) == (1, f"error: not a SQLite database: {env['db']}")
    assert "Traceback" not in out + err


def test_last_hour_on_an_empty_database_says_there_is_nothing(env: dict[str, Path]) -> None:
    CallStore(env["db"]).close()
    code, out, err = cli("report", "performance", "--last-hour")
    assert code == 0, err
    assert out.startswith("No calls or events recorded from ")
    assert out.strip().endswith("; nothing to report.")
    code, out, _ = cli("report", "performance", "--last-hour", "--format", "json")
    assert code == 0 and json.loads(out)["calls"] == 0
    code, _, err = cli("baseline", "update")
    assert code == 1 and "nothing to base a baseline on" in err


def test_a_benchmark_file_without_a_summary_is_refused(
    env: dict[str, Path], tmp_path: Path
) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"results": []}))
    code, _, err = cli("baseline", "update", "--from", str(bench))
    assert (code, err.strip()) == (1, f"error: {bench} has no top-level \"summary\" object")
    assert not env["baseline"].exists()
