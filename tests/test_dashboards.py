"""The Grafana dashboard and provisioning: no drift between committed JSON, the generator and the
metrics the system exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from voice_ai.observability import dashboards
from voice_ai.observability.dashboards import (
    CORE_PANELS,
    DASHBOARD_PATH,
    DATASOURCE_UID,
    build_dashboard,
    dashboard_json,
    panel_queries,
)
from voice_ai.observability.metrics import METRIC_NAMES, VoiceMetrics
from voice_ai.observability.promql import RAY_METRICS, metric_names_in

pytestmark = pytest.mark.unit

GRAFANA = Path(__file__).resolve().parents[1] / "grafana"


def exported_names() -> set[str]:
    """Every series name VoiceMetrics exposes, as Prometheus sees it."""
    names: set[str] = set()
    for family in VoiceMetrics().registry.collect():
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        elif family.type == "counter":
            names.add(family.name + "_total")
        else:
            names.add(family.name)
    return names


def unknown_names(expr: str) -> set[str]:
    return metric_names_in(expr) - exported_names() - RAY_METRICS


def test_committed_dashboard_is_what_the_generator_builds() -> None:
    assert DASHBOARD_PATH.read_text(encoding="utf-8") == dashboard_json(), (
        "grafana/dashboards/voice_ai.json is stale: run python -m voice_ai.observability.dashboards"
    )


def test_metric_names_match_what_the_registry_exports() -> None:
    exported = exported_names()
    for key, name in METRIC_NAMES.items():
        assert name in exported or f"{name}_bucket" in exported, key


def test_every_panel_query_uses_only_exported_or_ray_metrics() -> None:
    queries = panel_queries(json.loads(DASHBOARD_PATH.read_text(encoding="utf-8")))
    assert len(queries) >= 25
    for query in queries:
        assert metric_names_in(query.expr), f"{query.panel}: no metric in {query.expr}"
        assert not unknown_names(query.expr), f"{query.panel}: {unknown_names(query.expr)}"


def test_a_misspelled_metric_is_caught() -> None:
    assert unknown_names("sum(rate(voice_ai_response_latency_second_count[5m]))") == {
        "voice_ai_response_latency_second_count"
    }
    assert unknown_names("histogram_quantile(0.95, sum by (le) (rate(ray_node_cpu[5m])))") == {
        "ray_node_cpu"
    }


def test_dashboard_has_the_panels_the_runbook_needs() -> None:
    titles = {panel["title"] for panel in build_dashboard()["panels"]}
    for title in (
        *CORE_PANELS, "Errors by component", "Circuit breaker state", "Per-stage latency p95",
        "Per-stage latency average", "Fallback usage", "Process CPU", "Process memory",
        "Node CPU (Ray)", "Node memory (Ray)", "Node disk (Ray)",
    ):
        assert title in titles


def test_latency_panel_draws_the_runbook_thresholds() -> None:
    panel = next(p for p in build_dashboard()["panels"] if p["title"] == "Response latency")
    defaults = panel["fieldConfig"]["defaults"]
    assert [s["value"] for s in defaults["thresholds"]["steps"]] == [None, 1.2, 1.5, 2.0]
    assert defaults["custom"]["thresholdsStyle"]["mode"] != "off"
    assert [t["legendFormat"] for t in panel["targets"]] == ["average", "p95"]
    assert "histogram_quantile(0.95" in panel["targets"][1]["expr"]


def test_active_calls_panel_shows_the_limit() -> None:
    panel = next(p for p in build_dashboard()["panels"] if p["title"] == CORE_PANELS[1])
    exprs = [t["expr"] for t in panel["targets"]]
    assert exprs == [METRIC_NAMES["active_calls"], METRIC_NAMES["max_concurrent_calls"]]


def test_panels_do_not_overlap_and_have_unique_ids() -> None:
    panels = build_dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, panel["title"]
        cells |= mine


def test_provisioning_points_grafana_at_the_datasource_and_dashboards() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/voice_ai.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    for panel in build_dashboard()["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == DATASOURCE_UID


def test_generator_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "voice_ai.json"
    assert dashboards.main([str(out)]) == 0
    assert json.loads(out.read_text())["uid"] == "voice-ai-overview"
