"""Prometheus alert rules for every alert the runbook names, with its P0-P3 severity.

``python -m voice_ai.observability.alerts`` writes ``grafana/alerts/voice_ai_rules.yml``;
``tests/test_alert_rules.py`` checks the committed file equals a fresh build and runs
``promtool check rules`` and ``promtool test rules`` (``grafana/alerts/voice_ai_rules_test.yml``).

Annotations use ``$labels`` only (no ``$value``), so ``promtool test rules`` can state them
exactly; Grafana and Alertmanager show the value beside them.

Severities (runbook "Incident Response"): P0 system down, P1 degraded service (high error rate,
significant latency increase, failing calls, a dependency down), P2 performance issues
(tail latency, resources, queues), P3 minor issues (monitoring/configuration).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from voice_ai.observability import promql
from voice_ai.observability.metrics import METRIC_NAMES

__all__ = ["ALERTS", "RULES_PATH", "Alert", "build_rules", "rules_yaml"]

RULES_PATH = Path(__file__).resolve().parents[2] / "grafana" / "alerts" / "voice_ai_rules.yml"
RESPONSE_TIME = {"P0": "< 5 minutes", "P1": "< 15 minutes", "P2": "< 1 hour", "P3": "< 4 hours"}
WINDOW = "5m"
# Below this many finished calls in the window a success rate says little: one failed call out
# of two at night is not a P1.
MIN_CALLS_FOR_SUCCESS_RATE = 5


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    runbook: str

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, "team": "voice-ai"},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "response_time": RESPONSE_TIME[self.severity],
                "runbook": f"RUNBOOK.md#{self.runbook}",
            },
        }


def _n(key: str) -> str:
    return METRIC_NAMES[key]


_SCRAPED = '(up{job="voice_ai"} == 1)'
_ENDED_WINDOW = f'sum(increase({_n("calls_ended")}{{outcome=~"completed|failed"}}[{WINDOW}]))'

ALERTS = (
    Alert(
        "VoiceAIDown", 'up{job="voice_ai"} == 0 or absent(up{job="voice_ai"})', "1m", "P0",
        "Voice AI agent is down",
        "Prometheus cannot scrape the internal face's /metrics (:8001): no calls are being "
        "processed.",
        "complete-system-failure",
    ),
    Alert(
        "VoiceAIHighAverageLatency",
        f"{promql.avg_latency('response_latency', WINDOW)} > 1.5", "5m", "P1",
        "Average response latency above 1.5 s",
        "Average response latency over 5m is above 1.5 s (target < 1.2 s).",
        "high-latency-alert--15s",
    ),
    Alert(
        "VoiceAIHighP95Latency", f"{promql.p95_latency(WINDOW)} > 2.0", "5m", "P2",
        "p95 response latency above 2.0 s",
        "p95 response latency over 5m is above 2.0 s (target < 1.5 s).",
        "high-latency-alert--15s",
    ),
    Alert(
        "VoiceAILowSuccessRate",
        f"({promql.success_rate(WINDOW)} < 0.95) and on() "
        f"({_ENDED_WINDOW} >= {MIN_CALLS_FOR_SUCCESS_RATE})",
        "5m", "P1",
        "Call success rate below 95 %",
        "Completed / (completed + failed) calls over 5m is below 95 % (target > 99 %).",
        "low-success-rate-alert--95",
    ),
    Alert(
        "VoiceAIHighErrorRate", f"{promql.error_rate(WINDOW)} > 0.01", "5m", "P1",
        "Error rate above 1 %",
        "More than 1 error per 100 agent turns over 5m.",
        "low-success-rate-alert--95",
    ),
    Alert(
        "VoiceAIHighCPU", f"{promql.node_cpu_percent()} > 80", "5m", "P2",
        "Node CPU above 80 %",
        "Node {{ $labels.ip }} CPU is above 80 %.",
        "high-resource-usage-alert",
    ),
    Alert(
        "VoiceAIHighMemory", f"{promql.node_memory_percent()} > 85", "5m", "P2",
        "Node memory above 85 %",
        "Node {{ $labels.ip }} memory is above 85 %.",
        "high-resource-usage-alert",
    ),
    Alert(
        "VoiceAIHighDisk", f"{promql.node_disk_percent()} > 90", "10m", "P2",
        "Node disk above 90 %",
        "Node {{ $labels.ip }} disk is above 90 %; logs and the database stop when it fills.",
        "log-cleanup",
    ),
    Alert(
        "VoiceAIComponentUnhealthy", f"{_n('component_healthy')} == 0", "2m", "P1",
        "A component is unhealthy",
        "{{ $labels.component }} fails its health check (/health/detailed).",
        "incident-response-workflow",
    ),
    Alert(
        "VoiceAICircuitBreakerOpen", f"max by (provider) ({_n('breaker_state')}) == 1", "1m",
        "P1",
        "Circuit breaker open",
        "The {{ $labels.provider }} breaker is open: requests go to the fallback or fail.",
        "issue-connection-failures",
    ),
    Alert(
        "VoiceAIPoolQueueGrowing",
        f"sum by (pool) ({_n('pool_queue')}) > 5 "
        f"and sum by (pool) (delta({_n('pool_queue')}[10m])) > 0",
        "10m", "P2",
        "Provider pool queue growing",
        "The {{ $labels.pool }} pool queue is above 5 and still growing.",
        "performance-optimization",
    ),
    Alert(
        "VoiceAIRayMetricsMissing", 'up{job="ray"} == 0', "15m", "P3",
        "Ray metrics target down",
        "Prometheus cannot scrape Ray metrics at {{ $labels.instance }}; node CPU, memory and "
        "disk alerts are blind for that node.",
        "monitoring-and-alerting",
    ),
    # Missing series (issue #14): a hub that restarted but stopped polling, or a component whose
    # series vanished, must alert even though the scrape itself succeeds (up == 1).
    Alert(
        "VoiceAITelemetryStale",
        f"(time() - {_n('last_poll')} > 30) or "
        f"(absent({_n('last_poll')}) and on() {_SCRAPED})",
        "2m", "P1",
        "Telemetry hub not polling",
        "The hub has not polled pools, dispatcher and breakers for over 30 s: health, queue and "
        "breaker series are stale or missing, and their alerts cannot fire.",
        "monitoring-and-alerting",
    ),
    Alert(
        "VoiceAIHealthSeriesMissing",
        f'(absent({_n("component_healthy")}{{component="dispatcher"}}) or '
        f'absent({_n("component_healthy")}{{component="store_writer"}})) and on() {_SCRAPED}',
        "5m", "P1",
        "Component health series missing",
        "/metrics has no health series for {{ $labels.component }}: it is not being checked.",
        "monitoring-and-alerting",
    ),
    Alert(
        "VoiceAIPoolSeriesMissing",
        f"absent({_n('pool_workers')}) and on() {_SCRAPED}", "5m", "P1",
        "Provider pool series missing",
        "/metrics shows no provider pool: queue and worker alerts are blind.",
        "monitoring-and-alerting",
    ),
    Alert(
        "VoiceAIRecordsSpooled", f"max by (node) ({_n('spooled_records')}) > 0", "5m", "P1",
        "Call records waiting in a spool",
        "Node {{ $labels.node }} holds call records the store did not take (locked, full disk "
        "or wrong schema); they are replayed when the store takes writes again.",
        "records-waiting-in-the-spool",
    ),
    # Issue #14 item 6: a wrong LIVEKIT_API_SECRET silently drops every inbound call; stale,
    # future-dated or replayed webhooks mean a clock problem or someone resending them.
    Alert(
        "VoiceAIWebhooksRejected",
        f"sum by (reason) (increase({_n('webhooks_rejected')}[{WINDOW}])) > 3", "5m", "P1",
        "LiveKit webhooks refused",
        "More than 3 webhooks refused in 5m with reason {{ $labels.reason }}; with reason "
        "signature every inbound call may be lost.",
        "refused-webhooks-voiceaiwebhooksrejected",
    ),
)


def build_rules() -> dict[str, Any]:
    return {"groups": [{"name": "voice_ai", "rules": [alert.rule() for alert in ALERTS]}]}


def rules_yaml() -> str:
    header = "# Generated by voice_ai.observability.alerts; do not edit by hand.\n"
    return header + yaml.safe_dump(build_rules(), sort_keys=False, width=1000)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else RULES_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rules_yaml(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
