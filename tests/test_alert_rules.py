"""Alert rules: generated file up to date, every runbook alert present with its severity,
``promtool check rules`` and ``promtool test rules`` pass, and the Prometheus config is valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from voice_ai.observability import alerts
from voice_ai.observability.alerts import ALERTS, RULES_PATH, rules_yaml
from voice_ai.observability.metrics import VoiceMetrics
from voice_ai.observability.promql import RAY_METRICS, metric_names_in

pytestmark = pytest.mark.integration

GRAFANA = Path(__file__).resolve().parents[1] / "grafana"
RULES_TEST = GRAFANA / "alerts" / "voice_ai_rules_test.yml"

# The runbook's alerts: name -> (severity, threshold as it appears in the expression)
RUNBOOK_ALERTS = {
    "VoiceAIHighAverageLatency": ("P1", "> 1.5"),
    "VoiceAIHighP95Latency": ("P2", "> 2.0"),
    "VoiceAILowSuccessRate": ("P1", "< 0.95"),
    "VoiceAIHighErrorRate": ("P1", "> 0.01"),
    "VoiceAIHighCPU": ("P2", "> 80"),
    "VoiceAIHighMemory": ("P2", "> 85"),
    "VoiceAIHighDisk": ("P2", "> 90"),
    "VoiceAIComponentUnhealthy": ("P1", "== 0"),
    "VoiceAICircuitBreakerOpen": ("P1", "== 1"),
    "VoiceAIDown": ("P0", "== 0"),
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed: run `make system-deps`")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def loaded_rules() -> dict[str, dict[str, object]]:
    groups = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_committed_rules_are_what_the_generator_builds() -> None:
    assert RULES_PATH.read_text(encoding="utf-8") == rules_yaml(), (
        "grafana/alerts/voice_ai_rules.yml is stale: run python -m voice_ai.observability.alerts"
    )


def test_every_runbook_alert_exists_with_its_severity_and_threshold() -> None:
    rules = loaded_rules()
    for name, (severity, threshold) in RUNBOOK_ALERTS.items():
        rule = rules[name]
        assert rule["labels"]["severity"] == severity, name  # type: ignore[index]
        assert threshold in str(rule["expr"]), name
    assert {rule["labels"]["severity"] for rule in rules.values()} == {  # type: ignore[index]
        "P0", "P1", "P2", "P3"}


def test_rules_use_only_exported_ray_or_scrape_metrics() -> None:
    exported: set[str] = set()
    for family in VoiceMetrics().registry.collect():
        suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",)}
        exported |= {family.name + s for s in suffixes.get(family.type, ("",))}
    for alert in ALERTS:
        assert metric_names_in(alert.expr) <= exported | RAY_METRICS | {"up"}, alert.name


def test_every_alert_has_a_firing_and_a_quiet_rule_test() -> None:
    cases = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {alert.name for alert in ALERTS}
    assert fires == names
    assert quiet == names


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES_PATH))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules_catches_a_changed_threshold(tmp_path: Path) -> None:
    """The rule tests bite: moving the average latency threshold to 2.5 s fails them."""
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    (tmp_path / RULES_PATH.name).write_text(rules_yaml().replace("> 1.5", "> 2.5"))
    result = promtool("test", "rules", str(tmp_path / RULES_TEST.name))
    assert result.returncode != 0
    assert "VoiceAIHighAverageLatency" in result.stdout + result.stderr


def test_prometheus_config_scrapes_the_app_and_ray() -> None:
    config = yaml.safe_load((GRAFANA / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["voice_ai"]["metrics_path"] == "/metrics"
    # the internal face (INTERNAL_HTTP_PORT), never the public :8000
    assert jobs["voice_ai"]["static_configs"][0]["targets"] == ["localhost:8001"]
    assert jobs["ray"]["file_sd_configs"][0]["files"] == [
        "/tmp/ray/prom_metrics_service_discovery.json"
    ]
    assert [(GRAFANA / f).resolve() for f in config["rule_files"]] == [RULES_PATH]
    result = promtool("check", "config", str(GRAFANA / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_generator_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "rules.yml"
    assert alerts.main([str(out)]) == 0
    assert yaml.safe_load(out.read_text())["groups"][0]["name"] == "voice_ai"
