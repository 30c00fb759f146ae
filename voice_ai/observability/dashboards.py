"""The Grafana dashboard, generated from ``METRIC_NAMES`` so panels cannot drift from the code.

``python -m voice_ai.observability.dashboards`` writes ``grafana/dashboards/voice_ai.json``;
``tests/test_dashboards.py`` fails when the committed file differs from a fresh build or a panel
names a metric the system does not export. ``panel_queries()`` lists every query for the live
Prometheus test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

from voice_ai.observability import promql
from voice_ai.observability.metrics import METRIC_NAMES

__all__ = [
    "CORE_PANELS",
    "DASHBOARD_PATH",
    "DATASOURCE_UID",
    "PanelQuery",
    "build_dashboard",
    "dashboard_json",
    "panel_queries",
]

DATASOURCE_UID = "prometheus"
DASHBOARD_UID = "voice-ai-overview"
DASHBOARD_PATH = Path(__file__).resolve().parents[2] / "grafana" / "dashboards" / "voice_ai.json"
RATE = "$__rate_interval"
# Runbook: average latency target < 1.2 s, alert > 1.5 s (= p95 target), p95 alert > 2.0 s.
LATENCY_THRESHOLDS_S = (1.2, 1.5, 2.0)
# Panels that must return data whenever calls are flowing (checked against a live Prometheus).
CORE_PANELS = ("Response latency", "Active calls vs MAX_CONCURRENT_CALLS", "Success rate")

Panel = dict[str, Any]
_DS = {"type": "prometheus", "uid": DATASOURCE_UID}


class PanelQuery(NamedTuple):
    panel: str
    ref_id: str
    expr: str


def _n(key: str) -> str:
    return METRIC_NAMES[key]


def _target(expr: str, legend: str, ref_id: str) -> dict[str, Any]:
    return {"datasource": _DS, "expr": expr, "legendFormat": legend, "refId": ref_id}


def _thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def _panel(
    kind: str,
    title: str,
    targets: list[tuple[str, str]],
    *,
    unit: str = "short",
    description: str = "",
    thresholds: dict[str, Any] | None = None,
    draw_thresholds: bool = False,
    mappings: list[dict[str, Any]] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Panel:
    defaults: dict[str, Any] = {"unit": unit}
    if thresholds is not None:
        defaults["thresholds"] = thresholds
    if mappings:
        defaults["mappings"] = mappings
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 2,
            "fillOpacity": 10,
            "showPoints": "never",
            "thresholdsStyle": {"mode": "dashed" if draw_thresholds else "off"},
        }
    panel: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": _DS,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [
            _target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)
        ],
    }
    if kind == "timeseries":
        panel["options"] = {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif kind == "stat":
        panel["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
        }
    return panel


_LATENCY_STEPS = _thresholds(
    ("green", None), ("yellow", LATENCY_THRESHOLDS_S[0]), ("orange", LATENCY_THRESHOLDS_S[1]),
    ("red", LATENCY_THRESHOLDS_S[2]),
)
_PERCENT_STEPS = _thresholds(("green", None), ("orange", 80), ("red", 90))
_BREAKER_MAPPINGS = [
    {"type": "value", "options": {
        "0": {"text": "closed", "color": "green", "index": 0},
        "1": {"text": "open", "color": "red", "index": 1},
        "2": {"text": "half-open", "color": "yellow", "index": 2},
    }},
]


def _headline() -> list[Panel]:
    return [
        _panel("stat", "Active calls", [(_n("active_calls"), "active")]),
        _panel("stat", "Success rate (1h)", [(promql.success_rate("1h"), "success")],
               unit="percentunit", thresholds=_thresholds(
                   ("red", None), ("orange", 0.95), ("green", 0.99))),
        _panel("stat", "Average latency (5m)",
               [(promql.avg_latency("response_latency", "5m"), "avg")], unit="s",
               thresholds=_LATENCY_STEPS),
        _panel("stat", "p95 latency (5m)", [(promql.p95_latency("5m"), "p95")], unit="s",
               thresholds=_LATENCY_STEPS),
        _panel("stat", "Error rate (5m)", [(promql.error_rate("5m"), "errors per turn")],
               unit="percentunit", thresholds=_thresholds(("green", None), ("red", 0.01))),
        _panel("stat", "Open breakers", [(f"count({_n('breaker_state')} == 1) or vector(0)",
                                          "open")],
               thresholds=_thresholds(("green", None), ("red", 1))),
    ]


def _calls() -> list[Panel]:
    ended = _n("calls_ended")
    return [
        _panel("timeseries", "Response latency", [
            (promql.avg_latency("response_latency", RATE), "average"),
            (promql.p95_latency(RATE), "p95"),
        ], unit="s", thresholds=_LATENCY_STEPS, draw_thresholds=True, minimum=0,
            description="Caller stops speaking -> first agent audio. Lines: 1.2 s average "
                        "target, 1.5 s average alert / p95 target, 2.0 s p95 alert."),
        _panel("timeseries", "Active calls vs MAX_CONCURRENT_CALLS", [
            (_n("active_calls"), "active calls"),
            (_n("max_concurrent_calls"), "MAX_CONCURRENT_CALLS"),
        ], minimum=0),
        _panel("timeseries", "Success rate", [(promql.success_rate(RATE), "success rate")],
               unit="percentunit", maximum=1, draw_thresholds=True,
               thresholds=_thresholds(("red", None), ("orange", 0.95), ("green", 0.99)),
               description="Completed / (completed + failed) calls; alert below 95 %."),
        _panel("timeseries", "Calls per second by outcome", [
            (f"sum by (outcome) (rate({ended}[{RATE}]))", "{{outcome}}"),
            (f"sum(rate({_n('calls_started')}[{RATE}]))", "started"),
        ], unit="reqps", minimum=0),
        _panel("timeseries", "Errors by component", [
            (f"sum by (component) (rate({_n('errors')}[{RATE}]))", "{{component}}"),
            (promql.error_rate(RATE), "errors per turn"),
        ], minimum=0),
        _panel("timeseries", "Call setup p95 (warm vs cold actor)", [
            (promql.quantile_latency("call_setup", 0.95, RATE, by="pool"), "{{pool}}"),
        ], unit="s", minimum=0),
    ]


def _stages() -> list[Panel]:
    stages = (("stt_latency", "STT"), ("llm_first_token", "LLM first token"),
              ("tts_first_byte", "TTS first byte"))
    return [
        _panel("timeseries", "Per-stage latency p95", [
            (promql.quantile_latency(key, 0.95, RATE, by="provider"), f"{label} {{{{provider}}}}")
            for key, label in stages
        ], unit="s", minimum=0),
        _panel("timeseries", "Per-stage latency average", [
            (promql.avg_latency(key, RATE, by="provider"), f"{label} {{{{provider}}}}")
            for key, label in stages
        ], unit="s", minimum=0),
    ]


def _resilience() -> list[Panel]:
    turns = _n("turns")
    return [
        _panel("state-timeline", "Circuit breaker state", [
            (f"max by (provider) ({_n('breaker_state')})", "{{provider}}"),
        ], mappings=_BREAKER_MAPPINGS, thresholds=_thresholds(("green", None))),
        _panel("timeseries", "Breaker transitions", [
            (f"sum by (provider, to_state) (increase({_n('breaker_transitions')}[{RATE}]))",
             "{{provider}} -> {{to_state}}"),
        ], minimum=0),
        _panel("timeseries", "Fallback usage", [
            (f'sum(rate({turns}{{fallback="true"}}[{RATE}])) / sum(rate({turns}[{RATE}]))',
             "share of turns served by a fallback"),
            (f"sum by (provider) (rate({_n('stt_latency')}_count[{RATE}]))", "STT {{provider}}"),
        ], unit="short", minimum=0),
        _panel("timeseries", "Provider pool queue", [
            (f"sum by (pool) ({_n('pool_queue')})", "{{pool}}"),
        ], minimum=0),
        _panel("timeseries", "Provider pool workers", [
            (f"sum by (pool) ({_n('pool_workers')})", "{{pool}}"),
        ], minimum=0),
        _panel("state-timeline", "Component health", [
            (f"min by (component) ({_n('component_healthy')})", "{{component}}"),
        ], mappings=[{"type": "value", "options": {
            "0": {"text": "unhealthy", "color": "red", "index": 0},
            "1": {"text": "healthy", "color": "green", "index": 1},
        }}], thresholds=_thresholds(("green", None))),
    ]


def _resources() -> list[Panel]:
    return [
        _panel("timeseries", "Process CPU", [
            (_n("process_cpu"), "{{component}} {{node}}"),
        ], unit="percent", minimum=0, description="Percent of one core per process."),
        _panel("timeseries", "Process memory", [
            (_n("process_memory"), "{{component}} {{node}}"),
        ], unit="bytes", minimum=0),
        _panel("timeseries", "Node CPU (Ray)", [(promql.node_cpu_percent(), "{{ip}}")],
               unit="percent", minimum=0, maximum=100, thresholds=_PERCENT_STEPS,
               draw_thresholds=True, description="Alert above 80 %."),
        _panel("timeseries", "Node memory (Ray)", [(promql.node_memory_percent(), "{{ip}}")],
               unit="percent", minimum=0, maximum=100, thresholds=_thresholds(
                   ("green", None), ("red", 85)), draw_thresholds=True,
               description="Alert above 85 %."),
        _panel("timeseries", "Node disk (Ray)", [(promql.node_disk_percent(), "{{ip}}")],
               unit="percent", minimum=0, maximum=100, thresholds=_thresholds(
                   ("green", None), ("red", 90)), draw_thresholds=True,
               description="Alert above 90 %."),
    ]


def _row(title: str, y: int) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}


def _layout(sections: list[tuple[str, list[Panel], int, int]]) -> list[Panel]:
    """Place each section's panels left to right, ``per_line`` to a line of height ``h``."""
    placed: list[Panel] = []
    y = 0
    for title, panels, per_line, h in sections:
        placed.append(_row(title, y))
        y += 1
        width = 24 // per_line
        for i, panel in enumerate(panels):
            panel["gridPos"] = {"h": h, "w": width, "x": (i % per_line) * width,
                                "y": y + (i // per_line) * h}
        y += -(-len(panels) // per_line) * h
        placed.extend(panels)
    for panel_id, panel in enumerate(placed, start=1):
        panel["id"] = panel_id
    return placed


def build_dashboard() -> dict[str, Any]:
    panels = _layout([
        ("Overview", _headline(), 6, 4),
        ("Calls", _calls(), 2, 8),
        ("Pipeline stages", _stages(), 2, 8),
        ("Resilience and pools", _resilience(), 3, 8),
        ("Resources", _resources(), 3, 8),
    ])
    return {
        "uid": DASHBOARD_UID,
        "title": "Voice AI Agent",
        "description": "Generated by voice_ai.observability.dashboards; do not edit by hand.",
        "tags": ["voice-ai", "ray"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard_json() -> str:
    return json.dumps(build_dashboard(), indent=2) + "\n"


def panel_queries(dashboard: dict[str, Any] | None = None) -> list[PanelQuery]:
    """Every query of every panel, in dashboard order."""
    board = build_dashboard() if dashboard is None else dashboard
    return [
        PanelQuery(panel["title"], target["refId"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DASHBOARD_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dashboard_json(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
