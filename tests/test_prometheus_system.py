"""A real Prometheus scrapes the running system's /metrics while simulated calls go through Ray;
then every Grafana panel's query runs against it."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest
import ray

from tests.prometheus_fixture import run_prometheus
from voice_ai.observability.dashboards import CORE_PANELS, panel_queries
from voice_ai.pipeline.scenario import load_scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]

RATE_INTERVAL = "1m"
SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "opening_hours.yaml"


def test_every_panel_query_runs_against_real_calls(local_system, tmp_path: Path) -> None:
    target = f"127.0.0.1:{local_system.settings.internal_http_port}"  # the internal face
    with run_prometheus([target], tmp_dir=tmp_path) as prom:
        prom.wait_for_data('up{job="voice_ai"} == 1')
        spec = CallSpec(call_id=uuid.uuid4().hex[:16], scenario=load_scenario(SCENARIO),
                        record_audio=False)
        record = ray.get(local_system.handles.dispatcher.run_simulated.remote(spec),
                         timeout=240)
        assert record.outcome is CallOutcome.COMPLETED, record.error
        prom.wait_for_data(
            f"sum(increase(voice_ai_response_latency_seconds_count[{RATE_INTERVAL}])) > 0")
        prom.wait_for_data(f"sum(increase(voice_ai_calls_ended_total[{RATE_INTERVAL}])) > 0")

        empty = []
        for query in panel_queries():
            expr = query.expr.replace("$__rate_interval", RATE_INTERVAL)
            result = prom.query(expr)  # raises on any query error
            values = [float(s["value"][1]) for s in result]
            has_data = any(math.isfinite(v) for v in values)
            if query.panel in CORE_PANELS:
                assert has_data, f"core panel {query.panel!r} has no data: {expr}"
            elif not has_data:
                empty.append(query.panel)
        # what the call itself fed must show: stages, pools, health, process resources; only
        # Ray's node exporter (not scraped here) and the breakers (no cloud provider) may not
        must_show = {"Per-stage latency p95", "Per-stage latency average", "Fallback usage",
                     "Provider pool workers", "Component health", "Process memory",
                     "Call setup p95 (warm vs cold actor)", "Calls per second by outcome"}
        assert not must_show & set(empty), sorted(must_show & set(empty))
