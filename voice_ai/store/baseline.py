"""The performance baseline reports compare against, stored as JSON at ``BASELINE_PATH``.

Schema ``voice-ai-baseline/1``::

    {
      "schema": "voice-ai-baseline/1",
      "created_at": "2026-05-01T18:00:00+00:00",    # ISO 8601, when it was taken
      "source": "database:last 7 days" | "benchmark:<file>",
      "calls": 1234 | null,                          # calls it was computed from
      "success_rate": 0.995 | null,                  # completed / (completed + failed)
      "latency_s": {                                 # stage -> seconds; every stage optional
        "e2e": {"avg": 1.05, "p50": 1.0, "p95": 1.4, "p99": 1.7},
        "end_of_turn": {...}, "stt": {...}, "llm_ttft": {...}, "tts_ttfb": {...}
      }
    }

A benchmark result file (``--from FILE``) must have a top-level ``"summary"`` object holding
either ``"latency_s"`` in the shape above, or flat keys ``<stage>_<stat>_s`` /
``<stage>_<stat>_ms`` (``stat`` one of avg, mean, p50, p95, p99; e.g. ``"e2e_p95_ms": 1400``),
plus optional ``"calls"`` and ``"success_rate"``. It must give at least one end-to-end figure.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from voice_ai.store.errors import StoreError
from voice_ai.store.reports import STAGES, WindowSummary

__all__ = [
    "BASELINE_SCHEMA",
    "Baseline",
    "Comparison",
    "baseline_from_benchmark",
    "baseline_from_summary",
    "compare",
    "load_baseline",
    "save_baseline",
]

BASELINE_SCHEMA = "voice-ai-baseline/1"
_STATS = ("avg", "p50", "p95", "p99")


@dataclass(frozen=True, slots=True)
class Baseline:
    created_at: str
    source: str
    calls: int | None
    success_rate: float | None
    latency_s: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": BASELINE_SCHEMA, "created_at": self.created_at, "source": self.source,
                "calls": self.calls, "success_rate": self.success_rate,
                "latency_s": self.latency_s}


@dataclass(frozen=True, slots=True)
class Comparison:
    metric: str
    baseline: float
    current: float

    @property
    def change(self) -> float:
        return self.current - self.baseline

    @property
    def change_pct(self) -> float | None:
        return self.change / self.baseline * 100 if self.baseline else None


def baseline_from_summary(summary: WindowSummary, *, source: str, now: datetime) -> Baseline:
    if summary.e2e is None:
        raise StoreError("no turns with an end-to-end latency in that window: nothing to base "
                         "a baseline on")
    latency = {key: {"avg": s.avg_s, "p50": s.p50_s, "p95": s.p95_s, "p99": s.p99_s}
               for key, s in summary.latency.items() if s is not None}
    return Baseline(now.isoformat(timespec="seconds"), source, summary.calls,
                    summary.success_rate, latency)


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StoreError(f"{where} must be a number, got {value!r}")
    return float(value)


def _latency_from(summary: dict[str, Any], where: str) -> dict[str, dict[str, float]]:
    latency: dict[str, dict[str, float]] = {}
    nested = summary.get("latency_s")
    if isinstance(nested, dict):
        for stage, stats in nested.items():
            if stage in STAGES and isinstance(stats, dict):
                latency[stage] = {k: _number(v, f"{where}.latency_s.{stage}.{k}")
                                  for k, v in stats.items() if k in _STATS}
    for stage in STAGES:
        for stat in (*_STATS, "mean"):
            for unit, divisor in (("s", 1.0), ("ms", 1000.0)):
                key = f"{stage}_{stat}_{unit}"
                if key in summary:
                    name = "avg" if stat == "mean" else stat
                    value = _number(summary[key], f"{where}.{key}") / divisor
                    latency.setdefault(stage, {})[name] = value
    return {k: v for k, v in latency.items() if v}


def baseline_from_benchmark(path: Path, *, now: datetime) -> Baseline:
    """Read a benchmark result JSON with a top-level ``summary`` object (see module doc)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"benchmark file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(f"cannot read benchmark file {path}: {e}") from None
    summary = data.get("summary") if isinstance(data, dict) else None
    if not isinstance(summary, dict):
        raise StoreError(f"{path} has no top-level \"summary\" object")
    latency = _latency_from(summary, "summary")
    if "e2e" not in latency:
        raise StoreError(f"{path}: summary has no end-to-end latency (e2e) figures")
    calls = summary.get("calls")
    rate = summary.get("success_rate")
    return Baseline(
        now.isoformat(timespec="seconds"), f"benchmark:{path.name}",
        int(_number(calls, "summary.calls")) if calls is not None else None,
        _number(rate, "summary.success_rate") if rate is not None else None,
        latency,
    )


def load_baseline(path: Path) -> Baseline | None:
    """The stored baseline, ``None`` when there is none yet; ``StoreError`` when unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(f"cannot read baseline {path}: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
        raise StoreError(f"{path} is not a {BASELINE_SCHEMA} baseline file")
    rate, calls = data.get("success_rate"), data.get("calls")
    return Baseline(
        str(data.get("created_at", "")), str(data.get("source", "")),
        int(_number(calls, "calls")) if calls is not None else None,
        _number(rate, "success_rate") if rate is not None else None,
        _latency_from(data, str(path)),
    )


def save_baseline(baseline: Baseline, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(baseline.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def compare(baseline: Baseline, summary: WindowSummary) -> list[Comparison]:
    """Current figures next to the baseline's: e2e avg/p95/p99 and success rate."""
    rows: list[Comparison] = []
    e2e, base_e2e = summary.e2e, baseline.latency_s.get("e2e", {})
    if e2e is not None:
        for stat, current in (("avg", e2e.avg_s), ("p95", e2e.p95_s), ("p99", e2e.p99_s)):
            if stat in base_e2e:
                rows.append(Comparison(f"end to end {stat} (s)", base_e2e[stat], current))
    if baseline.success_rate is not None and summary.success_rate is not None:
        rows.append(Comparison("success rate", baseline.success_rate, summary.success_rate))
    return rows
