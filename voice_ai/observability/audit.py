"""The audit and performance lines the runbook greps for.

Audit (``voice_ai_agent_audit.log``)::

    ... INFO     voice_ai.audit CALL_START call_id=c-17 direction=inbound caller=+1******67 node=n1
    ... ERROR    voice_ai.audit CALL_END call_id=c-17 outcome=failed end_reason=error ...

A failed call's ``CALL_END`` is logged at ERROR, so it also lands in the errors file and in
``grep -c "ERROR"``; only failed calls carry the word ``failed``.

Performance (``voice_ai_agent_performance.log``; ``LATENCY:`` lines also in the main log)::

    ... INFO     voice_ai.performance LATENCY: call_id=c-17 turn=1 stt_latency=0.210 ...
    ... INFO     voice_ai.performance THROUGHPUT: window_s=60.000 calls_per_s=0.050 ...
    ... INFO     voice_ai.performance memory_usage component=stt_pool rss_bytes=... rss_mb=...

Latencies are in seconds; a stage that was not measured is left out of the line.
"""

from __future__ import annotations

import logging

from voice_ai.observability.log_format import AUDIT_LOGGER, PERFORMANCE_LOGGER
from voice_ai.records import CallOutcome, CallRecord, TurnTimings

__all__ = [
    "audit_call_end",
    "audit_call_rejected",
    "audit_call_start",
    "log_memory_usage",
    "log_throughput",
    "log_turn_latency",
]

_audit = logging.getLogger(AUDIT_LOGGER)
_performance = logging.getLogger(PERFORMANCE_LOGGER)


def audit_call_start(call_id: str, direction: str, caller_masked: str, node: str) -> None:
    """``CALL_START``: a call was admitted and handed to a call actor."""
    _audit.info(
        "CALL_START",
        extra={"call_id": call_id, "direction": str(direction), "caller": caller_masked or "-",
               "node": node or "-"},
    )


def audit_call_end(record: CallRecord) -> None:
    """``CALL_END`` with outcome and end reason; ERROR level for failed calls."""
    fields: dict[str, object] = {
        "call_id": record.call_id,
        "outcome": record.outcome.value,
        "end_reason": record.end_reason.value,
        "direction": record.direction.value,
        "duration_s": record.duration_s,
        "turns": len(record.turns),
        "caller": record.caller_masked or "-",
        "node": record.node_id or "-",
        "fallback_used": record.fallback_used,
    }
    if record.setup_s is not None:
        fields["setup_s"] = record.setup_s
    if record.error:
        fields["error"] = record.error
    level = logging.ERROR if record.outcome is CallOutcome.FAILED else logging.INFO
    _audit.log(level, "CALL_END", extra=fields)


def audit_call_rejected(call_id: str, direction: str, caller_masked: str, reason: str) -> None:
    """``CALL_REJECTED``: admission refused (over MAX_CONCURRENT_CALLS); the caller heard busy."""
    _audit.warning(
        "CALL_REJECTED",
        extra={"call_id": call_id, "direction": str(direction), "caller": caller_masked or "-",
               "reason": reason},
    )


def log_turn_latency(call_id: str, turn: TurnTimings) -> None:
    """``LATENCY:`` one turn's stage latencies and end-to-end response latency, in seconds."""
    fields: dict[str, object] = {"call_id": call_id, "turn": turn.index}
    for key, value in (
        ("stt_latency", turn.stt_s),
        ("eot_latency", turn.end_of_turn_s),
        ("llm_latency", turn.llm_ttft_s),
        ("tts_latency", turn.tts_ttfb_s),
        ("e2e", turn.e2e_s),
    ):
        if value is not None:
            fields[key] = value
    for key, provider in (
        ("stt_provider", turn.stt_provider),
        ("llm_provider", turn.llm_provider),
        ("tts_provider", turn.tts_provider),
    ):
        if provider:
            fields[key] = provider
    fields["fallback"] = turn.fallback_used
    if turn.interrupted:
        fields["interrupted"] = True
    _performance.info("LATENCY:", extra=fields)


def log_throughput(
    *,
    window_s: float,
    calls_started: int,
    calls_ended: int,
    turns: int,
    active_calls: int,
) -> None:
    """``THROUGHPUT:`` counts over the last ``window_s`` seconds, with per-second rates."""
    per_s = 1.0 / window_s if window_s > 0 else 0.0
    _performance.info(
        "THROUGHPUT:",
        extra={
            "window_s": float(window_s),
            "calls_per_s": calls_started * per_s,
            "turns_per_s": turns * per_s,
            "calls_started": calls_started,
            "calls_ended": calls_ended,
            "turns": turns,
            "active_calls": active_calls,
        },
    )


def log_memory_usage(component: str, rss_bytes: int, *, node: str = "") -> None:
    """``memory_usage``: resident memory of one component's process."""
    fields: dict[str, object] = {
        "component": component,
        "rss_bytes": int(rss_bytes),
        "rss_mb": rss_bytes / (1024 * 1024),
    }
    if node:
        fields["node"] = node
    _performance.info("memory_usage", extra=fields)
