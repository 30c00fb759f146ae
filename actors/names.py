"""Names of the system's actors. System actors live in one namespace, so Serve replicas (which
run in Serve's own namespace) and every driver find the same ones."""

from __future__ import annotations

NAMESPACE = "voice_ai"
DISPATCHER = "dispatcher"
TELEMETRY = "telemetry"
STAGES = ("stt", "llm", "tts")


def worker_name(stage: str, provider: str, index: int) -> str:
    """E.g. ``stt-whisper-0``: one name per pool slot, so a restarted slot keeps its name."""
    return f"{stage}-{provider}-{index}"
BREAKER_REGISTRY = "breaker_registry"
STORE_WRITER = "store_writer"
CALL_ACTOR_PREFIX = "callactor-"  # call actors are detached and named, so a restarted
# dispatcher finds them (``callactor-<12 hex>``)
CALLER_HOST_PREFIX = "caller-host-"  # simulated callers' hosts (``caller-host-<i>``)
