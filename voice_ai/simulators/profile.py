"""Latency profiles of the provider simulators: the model of time they keep.

``realistic`` (docs/performance.md, "The simulators' model of time"):

- Deepgram: the final transcript of a stretch of speech ``300 ± 30`` ms after the end of that
  speech (``ttfb_s`` / ``jitter_s``); interims while speech arrives, one per second of audio.
- OpenAI: the first token ``400 ± 40`` ms after the request, then one token every ``20`` ms.
- Cartesia: the first audio of a context ``90 ± 10`` ms after its first text; then 40 ms audio
  chunks every 10 ms (4x faster than real time).

``zero``: no added delay anywhere. Delays are drawn from a seeded ``random.Random`` per
provider, so a run's sequence of delays is repeatable (with concurrent calls, which request
gets which draw depends on arrival order).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["PROFILE_NAMES", "LatencyProfile", "SimulatorProfile", "named_profile"]


@dataclass
class LatencyProfile:
    """One provider's timing: first result ``ttfb_s ± jitter_s`` (uniform), then one chunk
    every ``chunk_interval_s ± chunk_jitter_s``."""

    ttfb_s: float = 0.0
    chunk_interval_s: float = 0.0
    jitter_s: float = 0.0
    seed: int = 0
    chunk_jitter_s: float = 0.0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        values = (self.ttfb_s, self.chunk_interval_s, self.jitter_s, self.chunk_jitter_s)
        if min(values) < 0:
            raise ValueError(f"latencies must not be negative, got {self!r}")
        if self.jitter_s > self.ttfb_s or self.chunk_jitter_s > self.chunk_interval_s:
            raise ValueError(f"jitter must not exceed the delay it spreads, got {self!r}")
        self._rng = random.Random(self.seed)

    def first_delay_s(self) -> float:
        return self._spread(self.ttfb_s, self.jitter_s)

    def chunk_delay_s(self) -> float:
        return self._spread(self.chunk_interval_s, self.chunk_jitter_s)

    def _spread(self, base_s: float, jitter_s: float) -> float:
        if base_s == 0.0 or jitter_s == 0.0:
            return base_s
        return base_s + self._rng.uniform(-jitter_s, jitter_s)


@dataclass
class SimulatorProfile:
    """The timings of all three simulators."""

    deepgram: LatencyProfile
    openai: LatencyProfile
    cartesia: LatencyProfile


def _realistic(seed: int) -> SimulatorProfile:
    return SimulatorProfile(
        deepgram=LatencyProfile(ttfb_s=0.300, jitter_s=0.030, seed=seed),
        openai=LatencyProfile(ttfb_s=0.400, jitter_s=0.040, chunk_interval_s=0.020,
                              seed=seed + 1),
        cartesia=LatencyProfile(ttfb_s=0.090, jitter_s=0.010, chunk_interval_s=0.010,
                                seed=seed + 2),
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
