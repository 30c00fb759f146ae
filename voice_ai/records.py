"""What a call leaves behind: per-turn timings and the call record.

These are plain frozen dataclasses so they pickle across Ray, serialise to JSON for the store
and benchmarks, and never carry a full phone number (``caller_masked`` only).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["CallDirection", "CallOutcome", "CallRecord", "EndReason", "TurnTimings"]


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    SIMULATED = "simulated"
    WEBRTC = "webrtc"  # a browser on the call page (/talk)


class CallOutcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    TRANSFERRED = "transferred"  # handed to a person (the transport's transfer)


class EndReason(StrEnum):
    CALLER_HANGUP = "caller_hangup"
    AGENT_HANGUP = "agent_hangup"
    ERROR = "error"
    REJECTED_BUSY = "rejected_busy"
    TIMEOUT = "timeout"
    NODE_LOST = "node_lost"
    TRANSFERRED = "transferred"
    # the zombie-call watchdog (voice_ai/pipeline/watchdog.py): no audio either way for
    # CALL_SILENCE_TIMEOUT_S, or a call longer than MAX_CALL_DURATION_S
    SILENCE_TIMEOUT = "silence_timeout"
    MAX_DURATION = "max_duration"

    @property
    def outcome(self) -> CallOutcome:
        if self in (EndReason.ERROR, EndReason.NODE_LOST, EndReason.TIMEOUT,
                    EndReason.SILENCE_TIMEOUT, EndReason.MAX_DURATION):
            return CallOutcome.FAILED
        if self is EndReason.REJECTED_BUSY:
            return CallOutcome.REJECTED
        if self is EndReason.TRANSFERRED:
            return CallOutcome.TRANSFERRED
        return CallOutcome.COMPLETED


@dataclass(frozen=True, slots=True)
class TurnTimings:
    """One caller turn and the agent's answer. Durations in seconds; ``None`` when not measured.

    ``e2e_s`` is the response latency the runbook targets: caller stops speaking -> first agent
    audio. ``stt_s`` is end of speech -> final transcript, ``llm_ttft_s`` LLM request -> first
    token, ``tts_ttfb_s`` TTS request -> first audio byte.
    """

    index: int
    ended_speaking_at: float  # unix time the caller stopped speaking
    e2e_s: float | None = None
    stt_s: float | None = None
    end_of_turn_s: float | None = None
    llm_ttft_s: float | None = None
    tts_ttfb_s: float | None = None
    stt_provider: str = ""
    llm_provider: str = ""
    tts_provider: str = ""
    fallback_used: bool = False
    interrupted: bool = False
    user_text: str = ""
    agent_text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """The record of one call, written to the store when the call ends."""

    call_id: str
    direction: CallDirection
    started_at: float
    ended_at: float
    end_reason: EndReason
    caller_masked: str = ""
    node_id: str = ""
    setup_s: float | None = None
    warm_start: bool = True
    error: str = ""
    recording_path: str = ""
    turns: tuple[TurnTimings, ...] = field(default_factory=tuple)

    @property
    def outcome(self) -> CallOutcome:
        return self.end_reason.outcome

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def providers_used(self) -> list[str]:
        used = {p for t in self.turns for p in (t.stt_provider, t.llm_provider, t.tts_provider)}
        return sorted(p for p in used if p)

    @property
    def fallback_used(self) -> bool:
        return any(t.fallback_used for t in self.turns)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["outcome"] = self.outcome.value
        data["direction"] = self.direction.value
        data["end_reason"] = self.end_reason.value
        return data
