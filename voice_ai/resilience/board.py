"""The breakers of all providers, keyed by provider name (``deepgram``, ``openai``, ...).

The cluster holds one ``BreakerBoard`` inside the named ``breaker_registry`` actor, so every
call on every node is gated by the same breakers. The board itself is plain Python: it applies
outcomes, answers admissions, renders snapshots for ``/health/detailed`` and keeps the recent
transitions for metrics and the errors log.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from voice_ai.config import Settings
from voice_ai.resilience.breaker import (
    Admission,
    BreakerConfig,
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    Clock,
    Transition,
)

__all__ = ["BreakerBoard", "breaker_config_from_settings", "snapshot_to_dict"]


def breaker_config_from_settings(settings: Settings) -> BreakerConfig:
    return BreakerConfig(
        failure_threshold=settings.circuit_breaker_threshold,
        window_s=settings.breaker_window_s,
        min_requests=settings.breaker_min_requests,
        recovery_timeout_s=settings.breaker_recovery_timeout_s,
        half_open_probes=settings.breaker_half_open_probes,
        # a request is bounded by the provider timeout; leave room for the report to arrive
        lease_s=2 * settings.provider_timeout_s + 5.0,
    )


def snapshot_to_dict(snapshot: BreakerSnapshot) -> dict[str, Any]:
    """A JSON-ready view, with the metric value of the state added."""
    data = asdict(snapshot)
    data["state"] = snapshot.state.value
    data["state_value"] = snapshot.state_value
    return data


class BreakerBoard:
    """Breakers created on first use with one shared config; transitions kept for readers."""

    def __init__(
        self,
        config: BreakerConfig,
        clock: Clock = time.monotonic,
        *,
        keep_transitions: int = 1000,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._transitions: deque[Transition] = deque(maxlen=keep_transitions)
        self._seq = 0  # number of transitions ever recorded
        self._on_transition = on_transition

    def breaker(self, provider: str) -> CircuitBreaker:
        if provider not in self._breakers:
            self._breakers[provider] = CircuitBreaker(
                provider, self.config, self._clock, on_transition=self._record
            )
        return self._breakers[provider]

    def acquire(self, provider: str) -> Admission:
        return self.breaker(provider).allow_request()

    def report(
        self, provider: str, *, ok: bool, error: str | None = None, transient: bool = True,
        release: bool = True,
    ) -> None:
        breaker = self.breaker(provider)
        if ok:
            breaker.record_success(release=release)
        else:
            breaker.record_failure(error or "unknown error", transient=transient,
                                   release=release)

    def restore_states(self, states: dict[str, str]) -> list[str]:
        """Re-seed a new board (the registry restarted) with the states last seen of the old
        one: a provider that was open or half-open is opened again (its recovery timeout
        starts over), so a restart does not let a flood of requests into a provider that is
        down. Returns the providers re-opened."""
        reopened = []
        for provider, state in sorted(states.items()):
            if state in (BreakerState.OPEN.value, BreakerState.HALF_OPEN.value):
                self.breaker(provider).reopen("restored after a registry restart")
                reopened.append(provider)
        return reopened

    def release(self, provider: str) -> None:
        """An admitted request ended without an outcome: free its slot."""
        self.breaker(provider).release()

    def snapshot(self, provider: str) -> BreakerSnapshot:
        return self.breaker(provider).snapshot()

    def snapshots(self) -> dict[str, BreakerSnapshot]:
        return {name: b.snapshot() for name, b in sorted(self._breakers.items())}

    def transitions_since(self, seq: int) -> tuple[int, list[Transition]]:
        """Transitions after sequence number ``seq`` (0: all kept) and the current number.

        A metrics or log reader polls with the number it got last time; if it fell behind more
        than ``keep_transitions``, the oldest are gone (the per-state counts in the snapshots
        stay exact).
        """
        for breaker in self._breakers.values():
            breaker.snapshot()  # let time-driven transitions (open -> half_open) happen
        new = max(0, min(self._seq - seq, len(self._transitions)))
        recent = list(self._transitions)[len(self._transitions) - new :] if new else []
        return self._seq, recent

    def _record(self, transition: Transition) -> None:
        self._transitions.append(transition)
        self._seq += 1
        if self._on_transition is not None:
            self._on_transition(transition)
