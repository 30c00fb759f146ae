"""Metric definitions: one registry that the cluster-wide metrics hub fills.

Names and meanings are listed in ``docs/metrics.md``; the Grafana dashboards and alert rules are
generated from ``METRIC_NAMES`` so they cannot drift from here. Labels are low-cardinality: never
a call id or a phone number.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from voice_ai.records import CallDirection, CallRecord, EndReason, TurnTimings
from voice_ai.telephony.rejections import RejectReason

__all__ = ["BREAKER_STATE_VALUES", "LATENCY_BUCKETS_S", "METRIC_NAMES", "VoiceMetrics"]

# Buckets around the runbook's thresholds: 1.2 s average target, 1.5 s alert / p95 target, 2.0 s.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0)
SETUP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BREAKER_STATE_VALUES = {"closed": 0, "open": 1, "half_open": 2}

METRIC_NAMES = {
    "active_calls": "voice_ai_active_calls",
    "max_concurrent_calls": "voice_ai_max_concurrent_calls",
    "calls_started": "voice_ai_calls_started_total",
    "calls_ended": "voice_ai_calls_ended_total",
    "call_setup": "voice_ai_call_setup_seconds",
    "response_latency": "voice_ai_response_latency_seconds",
    "stt_latency": "voice_ai_stt_latency_seconds",
    "llm_first_token": "voice_ai_llm_first_token_seconds",
    "tts_first_byte": "voice_ai_tts_first_byte_seconds",
    "turns": "voice_ai_turns_total",
    "errors": "voice_ai_errors_total",
    "breaker_state": "circuit_breaker_state",
    "breaker_transitions": "circuit_breaker_transitions_total",
    "pool_queue": "voice_ai_pool_queue_length",
    "pool_workers": "voice_ai_pool_workers",
    "process_cpu": "voice_ai_process_cpu_percent",
    "process_memory": "voice_ai_process_memory_bytes",
    "component_healthy": "voice_ai_component_healthy",
    "last_poll": "voice_ai_telemetry_last_poll_timestamp_seconds",
    "spooled_records": "voice_ai_spooled_records",
    "records_spooled": "voice_ai_records_spooled_total",
    "records_replayed": "voice_ai_records_replayed_total",
    "webhooks_rejected": "voice_ai_webhooks_rejected_total",
}


class VoiceMetrics:
    """All of the system's metrics in one private registry (no default process collectors)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, n = self.registry, METRIC_NAMES

        def strip(name: str) -> str:
            # prometheus_client appends _total itself for counters
            return name.removesuffix("_total")

        self.active_calls = Gauge(n["active_calls"], "Calls in progress, cluster-wide", registry=r)
        self.max_concurrent_calls = Gauge(
            n["max_concurrent_calls"], "Configured MAX_CONCURRENT_CALLS", registry=r
        )
        self.calls_started = Counter(
            strip(n["calls_started"]), "Calls admitted", ["direction"], registry=r
        )
        self.calls_ended = Counter(
            strip(n["calls_ended"]), "Calls ended", ["outcome", "end_reason"], registry=r
        )
        self.call_setup = Histogram(
            n["call_setup"], "Call admitted -> agent listening", ["pool"],
            buckets=SETUP_BUCKETS_S, registry=r,
        )
        self.response_latency = Histogram(
            n["response_latency"], "Caller stops speaking -> first agent audio",
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.stt_latency = Histogram(
            n["stt_latency"], "End of speech -> final transcript", ["provider"],
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.llm_first_token = Histogram(
            n["llm_first_token"], "LLM request -> first token", ["provider"],
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.tts_first_byte = Histogram(
            n["tts_first_byte"], "TTS request -> first audio", ["provider"],
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.turns = Counter(
            strip(n["turns"]), "Agent turns by whether a fallback provider served them",
            ["fallback"], registry=r,
        )
        self.errors = Counter(strip(n["errors"]), "Errors by component", ["component"], registry=r)
        self.breaker_state = Gauge(
            n["breaker_state"], "Circuit breaker state: 0 closed, 1 open, 2 half-open",
            ["provider"], registry=r,
        )
        self.breaker_transitions = Counter(
            strip(n["breaker_transitions"]), "Circuit breaker transitions",
            ["provider", "to_state"], registry=r,
        )
        self.pool_queue = Gauge(
            n["pool_queue"], "Requests waiting or running in a provider pool", ["pool"], registry=r
        )
        self.pool_workers = Gauge(
            n["pool_workers"], "Live worker actors per pool", ["pool"], registry=r
        )
        self.process_cpu = Gauge(
            n["process_cpu"], "CPU use of the system's processes, percent of one core",
            ["component", "node"], registry=r,
        )
        self.process_memory = Gauge(
            n["process_memory"], "Resident memory of the system's processes", ["component", "node"],
            registry=r,
        )
        self.component_healthy = Gauge(
            n["component_healthy"], "1 when a component's health check passes, 0 when it fails",
            ["component"], registry=r,
        )
        self.last_poll = Gauge(
            n["last_poll"], "Unix time of the telemetry hub's last completed poll", registry=r
        )
        self.spooled_records = Gauge(
            n["spooled_records"], "Call records waiting in a node's spool for the store",
            ["node"], registry=r,
        )
        self.records_spooled = Counter(
            strip(n["records_spooled"]), "Call records the store did not take, spooled",
            ["problem"], registry=r,
        )
        self.records_replayed = Counter(
            strip(n["records_replayed"]), "Spooled call records stored later", registry=r
        )
        self.webhooks_rejected = Counter(
            strip(n["webhooks_rejected"]), "LiveKit webhooks refused, by reason", ["reason"],
            registry=r,
        )
        self._start_counters_at_zero()

    def _start_counters_at_zero(self) -> None:
        """Create the known label sets at 0. Prometheus's rate() and increase() cannot see the
        first increment of a series that appears already at 1, so the first failed call after a
        restart would otherwise never reach the success-rate alert."""
        for direction in CallDirection:
            self.calls_started.labels(direction=direction.value)
        for reason in EndReason:
            self.calls_ended.labels(outcome=reason.outcome.value, end_reason=reason.value)
        for fallback in ("true", "false"):
            self.turns.labels(fallback=fallback)
        self.errors.labels(component="call")
        for pool in ("warm", "cold"):
            self.call_setup.labels(pool=pool)
        for problem in ("locked", "disk_full", "schema", "unavailable", "other"):
            self.records_spooled.labels(problem=problem)
        for rejected in RejectReason:
            self.webhooks_rejected.labels(reason=rejected.value)

    def start_providers_at_zero(self, providers: dict[str, list[str]]) -> None:
        """The same for the per-stage histograms of the providers this cluster runs
        (``{"stt": ["deepgram", "whisper"], ...}``), known only from the settings."""
        histograms = {"stt": self.stt_latency, "llm": self.llm_first_token,
                      "tts": self.tts_first_byte}
        for stage, names in providers.items():
            for name in names:
                histograms[stage].labels(provider=name)

    # --- events ----------------------------------------------------------------------------
    def call_started(self, direction: str) -> None:
        self.calls_started.labels(direction=direction).inc()
        self.active_calls.inc()

    def call_rejected(self) -> None:
        self.calls_ended.labels(outcome="rejected", end_reason="rejected_busy").inc()

    def call_ended(self, record: CallRecord) -> None:
        self.active_calls.dec()
        self.calls_ended.labels(
            outcome=record.outcome.value, end_reason=record.end_reason.value
        ).inc()
        if record.setup_s is not None:
            pool = "warm" if record.warm_start else "cold"
            self.call_setup.labels(pool=pool).observe(record.setup_s)
        if record.error:
            self.errors.labels(component="call").inc()

    def observe_turn(self, turn: TurnTimings) -> None:
        if turn.e2e_s is not None:
            self.response_latency.observe(turn.e2e_s)
        if turn.stt_s is not None:
            self.stt_latency.labels(provider=turn.stt_provider or "unknown").observe(turn.stt_s)
        if turn.llm_ttft_s is not None:
            self.llm_first_token.labels(provider=turn.llm_provider or "unknown").observe(
                turn.llm_ttft_s
            )
        if turn.tts_ttfb_s is not None:
            self.tts_first_byte.labels(provider=turn.tts_provider or "unknown").observe(
                turn.tts_ttfb_s
            )
        self.turns.labels(fallback=str(turn.fallback_used).lower()).inc()

    def error(self, component: str) -> None:
        self.errors.labels(component=component).inc()

    def webhook_rejected(self, reason: str) -> None:
        """A refused LiveKit webhook (``RejectReason``); fires ``VoiceAIWebhooksRejected``."""
        self.webhooks_rejected.labels(reason=reason).inc()

    def set_breaker(self, provider: str, state: str, *, transitioned: bool) -> None:
        self.breaker_state.labels(provider=provider).set(BREAKER_STATE_VALUES[state])
        if transitioned:
            self.breaker_transitions.labels(provider=provider, to_state=state).inc()

    def set_pool(self, pool: str, *, queue_length: int, workers: int) -> None:
        self.pool_queue.labels(pool=pool).set(queue_length)
        self.pool_workers.labels(pool=pool).set(workers)

    def set_process(self, component: str, node: str, *, cpu_percent: float, rss_bytes: int) -> None:
        self.process_cpu.labels(component=component, node=node).set(cpu_percent)
        self.process_memory.labels(component=component, node=node).set(rss_bytes)

    def set_component_health(self, component: str, *, healthy: bool) -> None:
        """A ``/health/detailed`` component check; 0 fires ``VoiceAIComponentUnhealthy``."""
        self.component_healthy.labels(component=component).set(1 if healthy else 0)

    def set_active_calls(self, count: int) -> None:
        """The hub's reconciled count of live calls (a set of call ids, never negative)."""
        self.active_calls.set(max(0, count))

    def polled(self, at: float) -> None:
        self.last_poll.set(at)

    def set_spooled(self, node: str, pending: int) -> None:
        self.spooled_records.labels(node=node).set(pending)

    def records_spooled_inc(self, problem: str, count: int = 1) -> None:
        self.records_spooled.labels(problem=problem).inc(count)

    def records_replayed_inc(self, count: int) -> None:
        self.records_replayed.inc(count)

    def render(self) -> bytes:
        """Prometheus text exposition of everything recorded so far."""
        return generate_latest(self.registry)
