"""A circuit breaker as a pure state machine: no I/O, no sleeps, the clock is injected.

    closed ──(window: requests >= min_requests and failure ratio >= threshold)──> open
    open ──(recovery_timeout_s elapsed)──> half_open
    half_open ──(a probe succeeds)──> closed
    half_open ──(a probe fails transiently)──> open

The threshold, precisely (``docs/resilience.md``): the breaker keeps the outcomes of the last
``window_s`` seconds. Only transient failures and successes are outcomes; permanent failures
(401, 403, 400) say nothing about the provider's health and are kept aside for a person. The
breaker opens when, within the window, ``requests >= min_requests`` and
``transient_failures / requests >= threshold``.

Admission while closed is a reservation: ``allow_request()`` counts the request as in flight
until its outcome is recorded. A request is refused ("throttled") when, if every request now in
flight failed, the breaker would have to open anyway. So the breaker never lets through a
request beyond those needed to prove an outage: from a window with no successes, at most
``min_requests`` requests reach a failing provider before it opens, however many callers race.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "Admission",
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "Clock",
    "Transition",
]

Clock = Callable[[], float]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Admission(StrEnum):
    """The answer to ``allow_request``; only ``ADMITTED`` may send to the provider."""

    ADMITTED = "admitted"
    PROBE = "probe"  # admitted as one of the limited half-open probes
    OPEN = "open"  # refused: the provider is considered down
    THROTTLED = "throttled"  # refused for now: enough requests are in flight to decide
    QUOTA = "quota"  # refused: the account's concurrency limit is reached (``QuotaBoard``)

    @property
    def allowed(self) -> bool:
        return self in (Admission.ADMITTED, Admission.PROBE)


@dataclass(frozen=True)
class BreakerConfig:
    """Breaker parameters; ``failure_threshold`` is CIRCUIT_BREAKER_THRESHOLD."""

    failure_threshold: float = 0.5
    window_s: float = 30.0
    min_requests: int = 5
    recovery_timeout_s: float = 15.0
    half_open_probes: int = 1
    lease_s: float = 30.0
    """An admitted request that reports no outcome for this long frees its slot (caller died)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.failure_threshold <= 1.0:
            raise ValueError("failure_threshold must be in (0, 1]")
        if self.window_s <= 0 or self.recovery_timeout_s <= 0 or self.lease_s <= 0:
            raise ValueError("window_s, recovery_timeout_s and lease_s must be positive")
        if self.min_requests < 1 or self.half_open_probes < 1:
            raise ValueError("min_requests and half_open_probes must be at least 1")


@dataclass(frozen=True)
class Transition:
    provider: str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    reason: str


@dataclass(frozen=True)
class BreakerSnapshot:
    """What ``/health/detailed`` shows for one provider."""

    provider: str
    state: BreakerState
    window_requests: int
    window_failures: int
    failure_ratio: float
    in_flight: int
    total_successes: int
    total_failures: int
    total_permanent_failures: int
    last_error: str | None
    last_error_at: float | None
    needs_attention: bool
    """A permanent error (bad key, bad request) since the last success: a person must act."""
    opened_at: float | None
    transitions: dict[str, int] = field(default_factory=dict)
    """Transitions so far by target state; a counter for ``circuit_breaker_transitions_total``."""

    @property
    def state_value(self) -> int:
        """``circuit_breaker_state``: 0 closed, 1 open, 2 half-open."""
        return {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}[
            self.state
        ]


class CircuitBreaker:
    """One provider's breaker. Not thread-safe: own it from one event loop or actor."""

    def __init__(
        self,
        provider: str,
        config: BreakerConfig,
        clock: Clock,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.provider = provider
        self.config = config
        self._clock = clock
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._window: deque[tuple[float, bool]] = deque()  # (time, transient failure?)
        self._in_flight: deque[float] = deque()  # admission times, oldest first
        self._opened_at: float | None = None
        self._successes = 0
        self._failures = 0
        self._permanent = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._needs_attention = False
        self._transitions: dict[str, int] = {}

    @property
    def state(self) -> BreakerState:
        self._tick()
        return self._state

    # --- admission ----------------------------------------------------------------------------
    def allow_request(self) -> Admission:
        """Decide one request; an allowed one holds a slot until its outcome is recorded."""
        self._tick()
        if self._state is BreakerState.OPEN:
            return Admission.OPEN
        if self._state is BreakerState.HALF_OPEN:
            if len(self._in_flight) >= self.config.half_open_probes:
                return Admission.OPEN
            self._in_flight.append(self._clock())
            return Admission.PROBE
        if self._would_open(extra_failures=len(self._in_flight)):
            return Admission.THROTTLED
        self._in_flight.append(self._clock())
        return Admission.ADMITTED

    # --- outcomes -----------------------------------------------------------------------------
    def record_success(self, *, release: bool = True) -> None:
        """Record a success; ``release=False`` when its request holds no slot (its slot was
        freed at an earlier outcome: a stream reports each turn)."""
        self._tick()
        if release:
            self._release()
        self._successes += 1
        self._needs_attention = False
        if self._state is BreakerState.HALF_OPEN:
            self._close("probe succeeded")
        elif self._state is BreakerState.CLOSED:
            self._window.append((self._clock(), False))

    def record_failure(self, error: str, *, transient: bool = True,
                       release: bool = True) -> None:
        """Record a failed request. Permanent failures never move the breaker. ``release``:
        as for ``record_success``."""
        self._tick()
        if release:
            self._release()
        self._last_error, self._last_error_at = error, self._clock()
        if not transient:
            self._permanent += 1
            self._needs_attention = True
            return
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN:
            self._open(f"probe failed: {error}")
        elif self._state is BreakerState.CLOSED:
            self._window.append((self._clock(), True))
            if self._would_open(extra_failures=0):
                self._open(f"failure ratio reached: {error}")

    def reopen(self, reason: str) -> None:
        """Open now (a restarted registry re-seeded with the state its predecessor had): the
        recovery timeout starts over, then half-open probes as usual."""
        self._tick()
        if self._state is not BreakerState.OPEN:
            self._open(reason)

    def release(self) -> None:
        """An admitted request ended without an outcome (cancelled, never sent): free its slot
        and record nothing."""
        self._tick()
        self._release()

    def snapshot(self) -> BreakerSnapshot:
        self._tick()
        requests, failures = self._counts()
        return BreakerSnapshot(
            provider=self.provider,
            state=self._state,
            window_requests=requests,
            window_failures=failures,
            failure_ratio=failures / requests if requests else 0.0,
            in_flight=len(self._in_flight),
            total_successes=self._successes,
            total_failures=self._failures,
            total_permanent_failures=self._permanent,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            needs_attention=self._needs_attention,
            opened_at=self._opened_at,
            transitions=dict(self._transitions),
        )

    # --- internals ----------------------------------------------------------------------------
    def _counts(self) -> tuple[int, int]:
        failures = sum(1 for _, failed in self._window if failed)
        return len(self._window), failures

    def _would_open(self, *, extra_failures: int) -> bool:
        requests, failures = self._counts()
        requests += extra_failures
        failures += extra_failures
        return (
            requests >= self.config.min_requests
            and failures / requests >= self.config.failure_threshold
        )

    def _release(self) -> None:
        if self._in_flight:
            self._in_flight.popleft()

    def _tick(self) -> None:
        """Apply what the passing of time does: expire the window and leases, end open."""
        now = self._clock()
        while self._window and self._window[0][0] <= now - self.config.window_s:
            self._window.popleft()
        while self._in_flight and self._in_flight[0] <= now - self.config.lease_s:
            self._in_flight.popleft()
        if (
            self._state is BreakerState.OPEN
            and self._opened_at is not None
            and now - self._opened_at >= self.config.recovery_timeout_s
        ):
            self._move(BreakerState.HALF_OPEN, "recovery timeout elapsed")

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN, reason)

    def _close(self, reason: str) -> None:
        self._opened_at = None
        self._window.clear()
        self._move(BreakerState.CLOSED, reason)

    def _move(self, to_state: BreakerState, reason: str) -> None:
        # Requests admitted under the previous state are no longer tracked: their late outcomes
        # must not be mistaken for probes (they still update the totals and the last error).
        self._in_flight.clear()
        transition = Transition(self.provider, self._state, to_state, self._clock(), reason)
        self._state = to_state
        self._transitions[to_state.value] = self._transitions.get(to_state.value, 0) + 1
        if self._on_transition is not None:
            self._on_transition(transition)
