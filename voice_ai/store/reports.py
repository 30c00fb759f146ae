"""Figures for a time window, read from the store: the data behind every report.

Definitions (the reports and ``docs/operations.md`` use these words this way):

- a call belongs to the window when it *started* in ``[start, end)``;
- **success rate** = completed / (completed + failed); calls rejected as busy are counted on
  their own and left out, since they never reached the agent (``None`` when there is neither);
- latencies are per turn, in seconds, over the turns of the window's calls, with nearest-rank
  percentiles (see ``stats``); stages: end to end, end of turn, STT, LLM first token,
  TTS first byte;
- **busiest hour** is the hour of the day (in ``tz``) in which most calls started, earliest
  first on a tie;
- **peak concurrency** is the most answered (not rejected) calls active at one instant;
  **headroom** = ``max_concurrent_calls`` - peak;
- **errors by component** counts ``error`` events; other event kinds are counted by kind;
- **appointments** are those the agent booked in the window (created in it), with their
  current status (booked, or cancelled later).
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from voice_ai.store.appointments import Appointment, appointments_between
from voice_ai.store.call_store import EventKind
from voice_ai.store.stats import LatencyStats, peak_concurrency

__all__ = ["STAGES", "STAGE_LABELS", "WindowSummary", "summarize"]

# Stage key (JSON, baseline) -> turns column, in the order the reports list them.
STAGES: dict[str, str] = {
    "e2e": "e2e_s",
    "end_of_turn": "end_of_turn_s",
    "stt": "stt_s",
    "llm_ttft": "llm_ttft_s",
    "tts_ttfb": "tts_ttfb_s",
}
STAGE_LABELS: dict[str, str] = {
    "e2e": "end to end",
    "end_of_turn": "end of turn",
    "stt": "STT",
    "llm_ttft": "LLM first token",
    "tts_ttfb": "TTS first byte",
}


@dataclass(frozen=True, slots=True)
class WindowSummary:
    start: float
    end: float
    max_concurrent_calls: int
    calls: int = 0
    completed: int = 0
    failed: int = 0
    rejected: int = 0
    transferred: int = 0
    """Calls the agent handed to a person (outcome ``transferred``): not in the success rate."""
    turns: int = 0
    latency: dict[str, LatencyStats | None] = field(default_factory=dict)
    fallback_calls: int = 0
    fallback_turns: int = 0
    errors_by_component: dict[str, int] = field(default_factory=dict)
    events_by_kind: dict[str, int] = field(default_factory=dict)
    calls_by_hour: tuple[int, ...] = (0,) * 24
    e2e_by_hour: dict[int, LatencyStats] = field(default_factory=dict)
    busiest_hour: tuple[int, int] | None = None
    busiest_day: tuple[date, int] | None = None
    days: int = 1
    peak_concurrency: int = 0
    peak_at: float | None = None
    appointments: tuple[Appointment, ...] = ()

    @property
    def success_rate(self) -> float | None:
        answered = self.completed + self.failed
        return self.completed / answered if answered else None

    @property
    def headroom(self) -> int:
        return self.max_concurrent_calls - self.peak_concurrency

    @property
    def e2e(self) -> LatencyStats | None:
        return self.latency.get("e2e")

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": {"start": self.start, "end": self.end},
            "calls": self.calls,
            "completed": self.completed,
            "failed": self.failed,
            "rejected": self.rejected,
            "transferred": self.transferred,
            "success_rate": self.success_rate,
            "turns": self.turns,
            "latency_s": {k: (v.to_dict() if v else None) for k, v in self.latency.items()},
            "fallback": {"calls": self.fallback_calls, "turns": self.fallback_turns},
            "errors_by_component": dict(self.errors_by_component),
            "events_by_kind": dict(self.events_by_kind),
            "calls_by_hour": list(self.calls_by_hour),
            "busiest_hour": (
                {"hour": self.busiest_hour[0], "calls": self.busiest_hour[1]}
                if self.busiest_hour else None
            ),
            "busiest_day": (
                {"date": self.busiest_day[0].isoformat(), "calls": self.busiest_day[1]}
                if self.busiest_day else None
            ),
            "calls_per_day": self.calls / self.days,
            "peak_concurrency": self.peak_concurrency,
            "peak_at": self.peak_at,
            "max_concurrent_calls": self.max_concurrent_calls,
            "headroom": self.headroom,
            "appointments": [
                {"day": a.day.isoformat(), "start": a.start.strftime("%H:%M"),
                 "service": a.service, "status": a.status.value, "call_id": a.call_id,
                 "created_at": a.created_at} for a in self.appointments],
        }


def _busiest(counts: Counter[Any]) -> tuple[Any, int] | None:
    if not counts:
        return None
    best = max(counts.values())
    return min(k for k, v in counts.items() if v == best), best


def summarize(
    conn: sqlite3.Connection,
    start: float,
    end: float,
    *,
    tz: tzinfo | None,
    max_concurrent_calls: int,
) -> WindowSummary:
    """Compute every report figure for calls that started in ``[start, end)``.

    Hours and days are taken in ``tz``; ``None`` means the system's local time.
    """
    window = (start, end)
    call_rows = conn.execute(
        "SELECT started_at, ended_at, outcome, fallback_used FROM calls "
        "WHERE started_at >= ? AND started_at < ?", window,
    ).fetchall()
    outcomes = Counter(str(r[2]) for r in call_rows)
    hours: Counter[int] = Counter()
    days: Counter[date] = Counter()
    for started_at, *_ in call_rows:
        local = datetime.fromtimestamp(started_at, tz)
        hours[local.hour] += 1
        days[local.date()] += 1
    peak, peak_at = peak_concurrency(
        (float(r[0]), float(r[1])) for r in call_rows if r[2] != "rejected"
    )

    columns = ", ".join(f"t.{c}" for c in STAGES.values())
    turn_rows = conn.execute(
        f"SELECT t.ended_speaking_at, t.fallback_used, {columns} FROM turns t "
        "JOIN calls c ON c.call_id = t.call_id WHERE c.started_at >= ? AND c.started_at < ?",
        window,
    ).fetchall()
    per_stage: dict[str, list[float]] = {name: [] for name in STAGES}
    e2e_hourly: dict[int, list[float]] = defaultdict(list)
    for row in turn_rows:
        for name, value in zip(STAGES, row[2:], strict=True):
            if value is not None:
                per_stage[name].append(float(value))
        if row[2] is not None:
            e2e_hourly[datetime.fromtimestamp(row[0], tz).hour].append(float(row[2]))

    errors: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for kind, component, n in conn.execute(
        "SELECT kind, component, count(*) FROM events WHERE ts >= ? AND ts < ? "
        f"AND kind != '{EventKind.CALL_ADMITTED}' "  # bookkeeping of live calls, not an event
        "GROUP BY kind, component", window,
    ):
        kinds[str(kind)] += int(n)
        if kind == EventKind.ERROR:
            errors[str(component) or "unknown"] += int(n)

    try:
        appointments = tuple(appointments_between(conn, start, end))
    except sqlite3.OperationalError:  # a database from before the appointments table
        appointments = ()

    return WindowSummary(
        start=start, end=end, max_concurrent_calls=max_concurrent_calls,
        calls=len(call_rows), completed=outcomes["completed"], failed=outcomes["failed"],
        rejected=outcomes["rejected"], transferred=outcomes["transferred"],
        turns=len(turn_rows),
        latency={name: LatencyStats.of(v) for name, v in per_stage.items()},
        fallback_calls=sum(1 for r in call_rows if r[3]),
        fallback_turns=sum(1 for r in turn_rows if r[1]),
        errors_by_component=dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))),
        events_by_kind=dict(sorted(kinds.items())),
        calls_by_hour=tuple(hours[h] for h in range(24)),
        e2e_by_hour={h: s for h, v in sorted(e2e_hourly.items()) if (s := LatencyStats.of(v))},
        busiest_hour=_busiest(hours), busiest_day=_busiest(days),
        days=max(1, round((end - start) / 86_400)),
        peak_concurrency=peak, peak_at=peak_at, appointments=appointments,
    )
