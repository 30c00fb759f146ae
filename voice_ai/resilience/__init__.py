"""Resilience: circuit breakers (pure, injected clock), failure classification, the board of
all providers' breakers. See ``docs/resilience.md``."""

from voice_ai.resilience.board import BreakerBoard, breaker_config_from_settings, snapshot_to_dict
from voice_ai.resilience.breaker import (
    Admission,
    BreakerConfig,
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    Transition,
)

__all__ = [
    "Admission",
    "BreakerBoard",
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "Transition",
    "breaker_config_from_settings",
    "snapshot_to_dict",
]
