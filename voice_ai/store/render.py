"""Reports as sections of rows, and the three ways to print them: rich table, markdown, JSON.

Every figure is formatted here and only here: latencies in seconds with three decimals
(``1.250``), rates as percentages with one decimal (``96.7 %``), times in the report's zone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

from voice_ai.store.baseline import Baseline, compare
from voice_ai.store.reports import STAGE_LABELS, WindowSummary

__all__ = ["OutputFormat", "Report", "ReportKind", "Section", "fmt_pct", "fmt_s", "render"]


class OutputFormat(StrEnum):
    TABLE = "table"
    MARKDOWN = "markdown"
    JSON = "json"


class ReportKind(StrEnum):
    DAILY = "daily"
    PERFORMANCE = "performance"
    CAPACITY = "capacity"


def fmt_s(value: float) -> str:
    return f"{value:.3f}"


def fmt_pct(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.1f} %"


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty_note: str = "none"


@dataclass(frozen=True, slots=True)
class Report:
    kind: ReportKind
    summary: WindowSummary
    tz: tzinfo | None
    baseline: Baseline | None = None

    def _at(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, self.tz).strftime("%Y-%m-%d %H:%M")

    @property
    def period(self) -> str:
        return f"{self._at(self.summary.start)} to {self._at(self.summary.end)}"

    @property
    def title(self) -> str:
        return f"{self.kind.value.capitalize()} report, {self.period}"

    @property
    def is_empty(self) -> bool:
        return (self.summary.calls == 0 and not self.summary.events_by_kind
                and not self.summary.appointments)

    def sections(self) -> list[Section]:
        parts = [self._overview()]
        if self.kind is not ReportKind.CAPACITY:
            parts += [self._latency(), self._errors()]
        if self.kind is not ReportKind.PERFORMANCE:
            parts.append(self._traffic())
        if self.kind is ReportKind.DAILY:
            parts.append(self._appointments())
        if self.kind is not ReportKind.CAPACITY:
            parts.append(self._baseline())
        return parts

    def _overview(self) -> Section:
        s = self.summary
        fallback_calls = fmt_pct(_ratio(s.fallback_calls, s.calls - s.rejected))
        fallback_turns = fmt_pct(_ratio(s.fallback_turns, s.turns))
        rows = [("calls", str(s.calls)), ("completed", str(s.completed)),
                ("failed", str(s.failed)), ("rejected (busy)", str(s.rejected)),
                ("transferred to a person", str(s.transferred)),
                ("success rate", fmt_pct(s.success_rate)), ("turns", str(s.turns)),
                ("calls using fallback", f"{s.fallback_calls} ({fallback_calls})"),
                ("turns using fallback", f"{s.fallback_turns} ({fallback_turns})")]
        if self.kind is ReportKind.CAPACITY:
            rows.insert(1, ("calls per day", f"{s.calls / s.days:.1f}"))
        return Section("Calls", ("figure", "value"), tuple(rows))

    def _latency(self) -> Section:
        rows = tuple(
            (STAGE_LABELS[key], str(st.count), fmt_s(st.avg_s), fmt_s(st.p50_s),
             fmt_s(st.p95_s), fmt_s(st.p99_s))
            for key, st in self.summary.latency.items() if st is not None
        )
        return Section("Latency (s)", ("stage", "turns", "avg", "p50", "p95", "p99"), rows,
                       "no turns with timings")

    def _errors(self) -> Section:
        s = self.summary
        rows = [(c, str(n)) for c, n in s.errors_by_component.items()]
        rows += [(f"({kind} events)", str(n)) for kind, n in s.events_by_kind.items()
                 if kind != "error"]
        return Section("Errors by component", ("component", "errors"), tuple(rows),
                       "no errors")

    def _traffic(self) -> Section:
        s = self.summary
        rows: list[tuple[str, str]] = []
        if s.busiest_hour:
            hour, n = s.busiest_hour
            rows.append(("busiest hour", f"{hour:02d}:00-{(hour + 1) % 24:02d}:00 ({n} calls)"))
        if s.busiest_day and self.kind is ReportKind.CAPACITY:
            day, n = s.busiest_day
            rows.append(("busiest day", f"{day.isoformat()} ({n} calls)"))
        peak_at = f" at {self._at(s.peak_at)}" if s.peak_at is not None else ""
        rows += [
            ("peak concurrency", f"{s.peak_concurrency}{peak_at}"),
            ("MAX_CONCURRENT_CALLS", str(s.max_concurrent_calls)),
            ("headroom", f"{s.headroom} ({fmt_pct(s.headroom / s.max_concurrent_calls)})"),
        ]
        return Section("Capacity", ("figure", "value"), tuple(rows))

    def _appointments(self) -> Section:
        rows = tuple(
            (a.day.isoformat(), a.start.strftime("%H:%M"), a.service, a.status.value,
             a.call_id[:12])
            for a in self.summary.appointments)
        return Section("Appointments booked by the agent", ("day", "time", "service", "status",
                                                           "call"), rows, "none booked")

    def _baseline(self) -> Section:
        headers = ("metric", "baseline", "now", "change")
        if self.baseline is None:
            return Section("Baseline", headers, (),
                           "no baseline stored (run: voice-ai baseline update)")
        rows = []
        for c in compare(self.baseline, self.summary):
            pct = "" if c.change_pct is None else f" ({c.change_pct:+.1f} %)"
            if c.metric == "success rate":
                rows.append((c.metric, fmt_pct(c.baseline), fmt_pct(c.current),
                             f"{c.change * 100:+.1f} pts"))
            else:
                rows.append((c.metric, fmt_s(c.baseline), fmt_s(c.current),
                             f"{c.change:+.3f}{pct}"))
        return Section(f"Baseline ({self.baseline.source}, {self.baseline.created_at})",
                       headers, tuple(rows), "no comparable figures")

    def to_dict(self) -> dict[str, Any]:
        data = {"report": self.kind.value, **self.summary.to_dict()}
        data["baseline"] = None if self.baseline is None else {
            **self.baseline.to_dict(),
            "comparison": [{"metric": c.metric, "baseline": c.baseline, "current": c.current,
                            "change": c.change} for c in compare(self.baseline, self.summary)],
        }
        return data


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    for sec in report.sections():
        lines += [f"## {sec.title}", ""]
        if not sec.rows:
            lines += [f"_{sec.empty_note}_", ""]
            continue
        lines.append("| " + " | ".join(sec.headers) + " |")
        lines.append("|" + "|".join("---" for _ in sec.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in sec.rows]
        lines.append("")
    return "\n".join(lines)


def _tables(report: Report, console: Console) -> None:
    console.print(f"[bold]{report.title}[/bold]")
    for sec in report.sections():
        if not sec.rows:
            console.print(f"{sec.title}: {sec.empty_note}")
            continue
        table = Table(title=sec.title, title_justify="left")
        for i, header in enumerate(sec.headers):
            table.add_column(header, justify="left" if i == 0 else "right", no_wrap=True)
        for row in sec.rows:
            table.add_row(*row)
        console.print(table)


def render(report: Report, fmt: OutputFormat, console: Console) -> None:
    """Print ``report``; an empty window prints one plain sentence (JSON still prints zeros)."""
    if fmt is OutputFormat.JSON:
        console.print(json.dumps(report.to_dict(), indent=2), markup=False, highlight=False,
                      soft_wrap=True)
    elif report.is_empty:
        console.print(f"No calls or events recorded from {report.period}; nothing to report.",
                      markup=False, highlight=False, soft_wrap=True)
    elif fmt is OutputFormat.MARKDOWN:
        console.print(_markdown(report), markup=False, highlight=False, soft_wrap=True)
    else:
        _tables(report, console)
