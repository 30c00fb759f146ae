"""A real Prometheus scrapes our /metrics (fed with real CallRecord/TurnTimings, one failed call)
and a Ray-format node exporter through the service discovery file; every dashboard panel query
runs through the HTTP API, the core panels return data, and the alert rules evaluate cleanly."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.prometheus_fixture import (
    RunningPrometheus,
    free_port,
    run_prometheus,
    start_prometheus,
)
from voice_ai.observability.alerts import ALERTS
from voice_ai.observability.dashboards import CORE_PANELS, panel_queries
from voice_ai.observability.metrics import VoiceMetrics
from voice_ai.observability.promql import RAY_METRICS, metric_names_in
from voice_ai.records import CallDirection, CallRecord, EndReason, TurnTimings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["start_prometheus"]  # the fixture, re-exported so pytest finds it here

# What Grafana substitutes for $__rate_interval with a 1 s scrape interval is a few seconds; a
# wider window keeps the test steady on a loaded machine.
RATE_INTERVAL = "30s"
RAY_NODE_LABELS = (  # ray.dashboard.consts.NODE_TAG_KEYS
    'ip="127.0.0.1",Version="2.60.0",SessionName="session_test",IsHeadNode="true",'
    'RayNodeType="head"'
)
RAY_NODE_METRICS = {  # Ray's reporter agent gauges, as its exporter prints them
    "ray_node_cpu_utilization": 12.5,
    "ray_node_mem_used": 4.0e9,
    "ray_node_mem_total": 16.0e9,
    "ray_node_disk_usage": 20.0e9,
    "ray_node_disk_free": 80.0e9,
}


def serve(body: Callable[[], bytes]) -> tuple[ThreadingHTTPServer, str]:
    """A loopback HTTP server answering GET /metrics with ``body()``."""

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  # the name http.server calls
            if self.path != "/metrics":
                self.send_error(404)
                return
            payload = body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


def ray_exporter_text() -> bytes:
    lines = []
    for name, value in RAY_NODE_METRICS.items():
        lines += [f"# TYPE {name} gauge", f"{name}{{{RAY_NODE_LABELS}}} {value}"]
    return ("\n".join(lines) + "\n").encode()


class CallTraffic:
    """Feeds VoiceMetrics the way the telemetry hub does: real records from simulated calls."""

    def __init__(self, metrics: VoiceMetrics) -> None:
        self.metrics = metrics
        self.calls = 0
        self._rng = random.Random(5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def turn(self, index: int) -> TurnTimings:
        stt, llm, tts = (self._rng.uniform(0.1, 0.3), self._rng.uniform(0.2, 0.5),
                         self._rng.uniform(0.05, 0.2))
        fallback = self._rng.random() < 0.2
        return TurnTimings(
            index=index, ended_speaking_at=time.time(), e2e_s=stt + llm + tts + 0.3, stt_s=stt,
            end_of_turn_s=0.3, llm_ttft_s=llm, tts_ttfb_s=tts,
            stt_provider="whisper" if fallback else "deepgram", llm_provider="local",
            tts_provider="piper", fallback_used=fallback,
        )

    def call(self, reason: EndReason, turns: int = 4, error: str = "") -> None:
        self.calls += 1
        self.metrics.call_started(CallDirection.SIMULATED.value)
        timings = tuple(self.turn(i) for i in range(1, turns + 1))
        for t in timings:
            self.metrics.observe_turn(t)
        now = time.time()
        self.metrics.call_ended(CallRecord(
            call_id=f"c-{self.calls}", direction=CallDirection.SIMULATED, started_at=now - 20,
            ended_at=now, end_reason=reason, caller_masked="+1******67", node_id="node-1",
            setup_s=self._rng.uniform(0.01, 0.08), error=error, turns=timings,
        ))

    def start(self) -> None:
        m = self.metrics
        m.max_concurrent_calls.set(100)
        for _ in range(3):  # calls still in progress
            m.call_started(CallDirection.INBOUND.value)
        m.call_rejected()
        m.set_breaker("deepgram", "open", transitioned=True)
        m.set_breaker("openai", "closed", transitioned=False)
        for pool in ("stt_whisper", "llm_local", "tts_piper"):
            m.set_pool(pool, queue_length=1, workers=2)
            m.set_process(pool.split("_")[0] + "_pool", "node-1", cpu_percent=35.0,
                          rss_bytes=300_000_000)
            m.set_component_health(pool, healthy=True)
        for component in ("dispatcher", "store_writer"):  # the hub's own checks
            m.set_component_health(component, healthy=True)
        m.polled(time.time())
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.metrics.polled(time.time())  # the hub polls every 2 s; here with each call
            self.call(EndReason.CALLER_HANGUP)
            if self.calls % 7 == 0:
                state = "half_open" if self.calls % 2 else "closed"
                self.metrics.set_breaker("openai", state, transitioned=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    """One Prometheus for the module, scraping the app (calls flowing) and a Ray exporter."""
    metrics = VoiceMetrics()
    traffic = CallTraffic(metrics)
    app, app_target = serve(metrics.render)
    ray, ray_target = serve(ray_exporter_text)
    traffic.start()
    try:
        with run_prometheus(
            [app_target], [ray_target], tmp_dir=tmp_path_factory.mktemp("prometheus")
        ) as prom:
            prom.wait_for_data(
                f"sum(rate(voice_ai_response_latency_seconds_count[{RATE_INTERVAL}])) > 0"
            )
            prom.wait_for_data('up{job="ray"} == 1')
            # one failed call (and its one error), after the first scrapes so rate() sees the
            # counters move, and after enough turns that one error stays under the 1 % alert
            prom.wait_for_data("sum(increase(voice_ai_turns_total[1h])) > 200")
            traffic.call(EndReason.ERROR, turns=1, error="llm request failed")
            prom.wait_for_data(
                'sum(rate(voice_ai_calls_ended_total{outcome="failed"}[1h])) > 0'
            )
            yield prom
    finally:
        traffic.stop()
        app.shutdown()
        ray.shutdown()


def finite_samples(result: list[dict[str, object]]) -> list[float]:
    values = [float(sample["value"][1]) for sample in result]  # type: ignore[index]
    return [v for v in values if math.isfinite(v)]


def test_every_panel_query_runs_and_returns_data(live: RunningPrometheus) -> None:
    queries = panel_queries()
    empty = []
    for query in queries:
        expr = query.expr.replace("$__rate_interval", RATE_INTERVAL)
        assert "$" not in expr, expr
        result = live.query(expr)  # raises PrometheusQueryError on any error
        if not finite_samples(result):
            empty.append(f"{query.panel}/{query.ref_id}: {expr}")
        if query.panel in CORE_PANELS:
            assert finite_samples(result), f"core panel {query.panel} has no data: {expr}"
    assert not empty, "panels without data:\n" + "\n".join(empty)
    assert {q.panel for q in queries} >= set(CORE_PANELS)


def test_core_panels_show_the_traffic(live: RunningPrometheus) -> None:
    (active,) = live.query("voice_ai_active_calls")
    assert float(active["value"][1]) == 3
    (limit,) = live.query("voice_ai_max_concurrent_calls")
    assert float(limit["value"][1]) == 100
    latency = next(q for q in panel_queries() if q.panel == "Response latency")
    (avg,) = finite_samples(live.query(latency.expr.replace("$__rate_interval", RATE_INTERVAL)))
    assert 0.6 < avg < 1.4  # the simulated turns take 0.65-1.3 s
    success = next(q for q in panel_queries() if q.panel == "Success rate (1h)")
    (rate,) = finite_samples(live.query(success.expr))
    assert 0.9 < rate < 1.0  # one failed call among the completed ones


def test_every_scraped_metric_the_dashboard_uses_exists(live: RunningPrometheus) -> None:
    names = set(live.api("/api/v1/label/__name__/values"))
    used = set().union(*(metric_names_in(q.expr) for q in panel_queries()))
    assert used - names == set()
    assert RAY_METRICS <= names


def test_alert_rules_load_and_evaluate_against_real_metrics(live: RunningPrometheus) -> None:
    def evaluated() -> bool:
        return all(rule["health"] != "unknown" for rule in live.rules())

    live.wait_for(evaluated, "every rule to be evaluated once")
    rules = live.rules()
    assert {rule["name"] for rule in rules} == {alert.name for alert in ALERTS}
    assert [rule["name"] for rule in rules if rule["health"] != "ok"] == []
    active = {
        (a["labels"]["alertname"], a["labels"].get("provider", "")): a["state"]
        for a in live.api("/api/v1/alerts")["alerts"]
    }
    # deepgram's breaker is open (pending for its first minute); nothing else is wrong
    assert set(active) == {("VoiceAICircuitBreakerOpen", "deepgram")}
    assert active[("VoiceAICircuitBreakerOpen", "deepgram")] in ("pending", "firing")


def test_down_alert_sees_an_app_that_does_not_answer(
    start_prometheus: Callable[..., RunningPrometheus],
) -> None:
    """The reusable fixture: nothing listens on the app's port, so up == 0 and VoiceAIDown
    goes pending; the Ray job still comes from the service discovery file."""
    ray, ray_target = serve(ray_exporter_text)
    try:
        prom = start_prometheus([f"127.0.0.1:{free_port()}"], [ray_target])
        prom.wait_for_data('up{job="voice_ai"} == 0')
        prom.wait_for_data('ALERTS{alertname="VoiceAIDown"}')
        (node,) = prom.wait_for_data("ray_node_cpu_utilization")
        assert node["metric"]["job"] == "ray" and node["metric"]["ip"] == "127.0.0.1"
    finally:
        ray.shutdown()
