"""Latency profiles of the provider simulators: time to first result, pacing, jitter.

Delays are drawn from a seeded ``random.Random`` so a benchmark run is repeatable. Named
profiles: ``realistic`` (Deepgram final 300 ms after end of speech, OpenAI first token 400 ms,
Cartesia first byte 90 ms, each with jitter) and ``zero`` (no added delay).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["PROFILE_NAMES", "LatencyProfile", "SimulatorProfile", "named_profile"]


@dataclass
class LatencyProfile:
    """One provider's timing. ``jitter_s`` is the half-width of a uniform spread."""

    ttfb_s: float = 0.0
    chunk_interval_s: float = 0.0
    jitter_s: float = 0.0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if min(self.ttfb_s, self.chunk_interval_s, self.jitter_s) < 0:
            raise ValueError("latencies must not be negative")
        self._rng = random.Random(self.seed)

    def first_delay_s(self) -> float:
        return self._spread(self.ttfb_s)

    def chunk_delay_s(self) -> float:
        return self._spread(self.chunk_interval_s)

    def _spread(self, base_s: float) -> float:
        if base_s == 0.0 or self.jitter_s == 0.0:
            return base_s
        return max(0.0, base_s + self._rng.uniform(-self.jitter_s, self.jitter_s))


@dataclass
class SimulatorProfile:
    """The timings of all three simulators."""

    deepgram: LatencyProfile
    openai: LatencyProfile
    cartesia: LatencyProfile


def _realistic(seed: int) -> SimulatorProfile:
    return SimulatorProfile(
        deepgram=LatencyProfile(ttfb_s=0.300, chunk_interval_s=0.0, jitter_s=0.030, seed=seed),
        openai=LatencyProfile(ttfb_s=0.400, chunk_interval_s=0.020, jitter_s=0.040, seed=seed + 1),
        cartesia=LatencyProfile(
            ttfb_s=0.090, chunk_interval_s=0.010, jitter_s=0.010, seed=seed + 2
        ),
    )


def _zero(seed: int) -> SimulatorProfile:
    return SimulatorProfile(
        deepgram=LatencyProfile(seed=seed),
        openai=LatencyProfile(seed=seed + 1),
        cartesia=LatencyProfile(seed=seed + 2),
    )


_PROFILES = {"realistic": _realistic, "zero": _zero}
PROFILE_NAMES = tuple(_PROFILES)


def named_profile(name: str, seed: int = 0) -> SimulatorProfile:
    try:
        return _PROFILES[name](seed)
    except KeyError:
        choices = ", ".join(_PROFILES)
        raise ValueError(f"unknown profile {name!r}; choose one of {choices}") from None
