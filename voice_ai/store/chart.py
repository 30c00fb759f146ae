"""The daily report's PNG: end-to-end latency percentiles and call volume per hour of the day.

Drawn with matplotlib's object API and the Agg canvas (no pyplot, no display needed).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from voice_ai.store.reports import WindowSummary

__all__ = ["write_daily_chart"]

# The runbook's targets, drawn as reference lines: p95 target / alert 1.5 s, average 1.2 s.
_P95_TARGET_S = 1.5
_AVG_TARGET_S = 1.2


def write_daily_chart(summary: WindowSummary, path: Path, *, title: str) -> Path:
    """Write the chart to ``path`` (PNG; parent folders created) and return the path."""
    fig = Figure(figsize=(10, 6), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})

    hours = sorted(summary.e2e_by_hour)
    per_hour = [summary.e2e_by_hour[h] for h in hours]
    for label, values in (
        ("p50", [s.p50_s for s in per_hour]),
        ("p95", [s.p95_s for s in per_hour]),
        ("p99", [s.p99_s for s in per_hour]),
    ):
        top.plot(hours, values, marker="o", label=label)
    top.axhline(_P95_TARGET_S, color="red", linestyle="--", linewidth=1, label="p95 target")
    top.axhline(_AVG_TARGET_S, color="grey", linestyle=":", linewidth=1, label="avg target")
    top.set_ylabel("end-to-end latency (s)")
    top.set_title(title)
    top.legend(loc="upper left", fontsize="small")
    top.grid(True, alpha=0.3)

    bottom.bar(range(24), summary.calls_by_hour, color="tab:blue")
    bottom.set_ylabel("calls started")
    bottom.set_xlabel("hour of day")
    bottom.set_xticks(range(0, 24, 2))
    bottom.set_xlim(-0.5, 23.5)
    bottom.grid(True, axis="y", alpha=0.3)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
