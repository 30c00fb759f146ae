"""The circuit breaker as a state machine, driven by a fake clock: no sleeps."""

from __future__ import annotations

import pytest

from voice_ai.resilience import (
    Admission,
    BreakerBoard,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    Transition,
)

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


CONFIG = BreakerConfig(
    failure_threshold=0.5, window_s=30.0, min_requests=5, recovery_timeout_s=15.0,
    half_open_probes=1, lease_s=60.0,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transitions() -> list[Transition]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, transitions: list[Transition]) -> CircuitBreaker:
    return CircuitBreaker("deepgram", CONFIG, clock, on_transition=transitions.append)


def run(breaker: CircuitBreaker, outcomes: str) -> None:
    """Admit and settle one request per letter: s success, f transient failure."""
    for outcome in outcomes:
        assert breaker.allow_request().allowed
        if outcome == "s":
            breaker.record_success()
        else:
            breaker.record_failure("HTTP 500")


def test_opens_once_min_requests_reached_and_ratio_at_threshold(breaker: CircuitBreaker) -> None:
    run(breaker, "ssff")  # 4 requests: below min_requests, stays closed at 50 %
    assert breaker.state is BreakerState.CLOSED
    run(breaker, "f")  # 5 requests, 3 failures: 60 % >= 50 %
    assert breaker.state is BreakerState.OPEN
    assert breaker.allow_request() is Admission.OPEN


def test_ratio_below_threshold_stays_closed(breaker: CircuitBreaker) -> None:
    run(breaker, "sssfsssfsf")  # 3 of 10 fail
    snap = breaker.snapshot()
    assert snap.state is BreakerState.CLOSED
    assert (snap.window_requests, snap.window_failures) == (10, 3)


def test_old_outcomes_leave_the_window(breaker: CircuitBreaker, clock: FakeClock) -> None:
    run(breaker, "ffff")
    clock.advance(31.0)  # the four failures expire
    run(breaker, "f")
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().window_failures == 1


def test_recovery_timeout_then_probe_success_closes(
    breaker: CircuitBreaker, clock: FakeClock, transitions: list[Transition]
) -> None:
    run(breaker, "fffff")
    clock.advance(14.9)
    assert breaker.allow_request() is Admission.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow_request() is Admission.PROBE
    assert breaker.allow_request() is Admission.OPEN  # one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot().window_requests == 0  # a fresh start
    assert [t.to_state for t in transitions] == ["open", "half_open", "closed"]
    assert breaker.snapshot().transitions == {"open": 1, "half_open": 1, "closed": 1}


def test_probe_failure_reopens_and_restarts_the_timer(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    run(breaker, "fffff")
    clock.advance(15.0)
    assert breaker.allow_request() is Admission.PROBE
    breaker.record_failure("timeout")
    assert breaker.state is BreakerState.OPEN
    clock.advance(14.0)
    assert breaker.allow_request() is Admission.OPEN
    clock.advance(1.0)
    assert breaker.allow_request() is Admission.PROBE


def test_several_half_open_probes_allowed_when_configured(clock: FakeClock) -> None:
    config = BreakerConfig(min_requests=2, half_open_probes=3, recovery_timeout_s=5.0)
    breaker = CircuitBreaker("openai", config, clock)
    run(breaker, "ff")
    clock.advance(5.0)
    admissions = [breaker.allow_request() for _ in range(4)]
    assert admissions == [Admission.PROBE] * 3 + [Admission.OPEN]


def test_permanent_failures_do_not_open_but_need_a_person(breaker: CircuitBreaker) -> None:
    for _ in range(20):
        assert breaker.allow_request().allowed
        breaker.record_failure("HTTP 401: invalid api key", transient=False)
    snap = breaker.snapshot()
    assert snap.state is BreakerState.CLOSED
    assert snap.needs_attention
    assert snap.total_permanent_failures == 20
    assert snap.last_error == "HTTP 401: invalid api key"
    breaker.allow_request()
    breaker.record_success()
    assert not breaker.snapshot().needs_attention


def test_concurrent_requests_from_a_clean_window_are_capped_at_min_requests(
    breaker: CircuitBreaker,
) -> None:
    admissions = [breaker.allow_request() for _ in range(10)]
    assert admissions.count(Admission.ADMITTED) == 5
    assert admissions[5:] == [Admission.THROTTLED] * 5
    for _ in range(5):
        breaker.record_failure("connection refused")
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot().total_failures == 5  # no request beyond the five needed


def test_successes_widen_the_admission(breaker: CircuitBreaker) -> None:
    run(breaker, "s" * 20)
    # with 20 successes, 20 failures are needed to reach 50 %: 20 may be in flight
    admissions = [breaker.allow_request() for _ in range(25)]
    assert admissions.count(Admission.ADMITTED) == 20


def test_a_reservation_without_outcome_expires(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(5):
        breaker.allow_request()
    assert breaker.allow_request() is Admission.THROTTLED
    clock.advance(CONFIG.lease_s)
    assert breaker.allow_request() is Admission.ADMITTED


def test_late_outcomes_while_open_do_not_move_it(breaker: CircuitBreaker) -> None:
    run(breaker, "fffff")
    breaker.record_success()  # a request admitted before the opening finishes late
    assert breaker.state is BreakerState.OPEN


def test_snapshot_reports_state_value_and_ratio(breaker: CircuitBreaker) -> None:
    run(breaker, "sf")
    snap = breaker.snapshot()
    assert (snap.state_value, snap.failure_ratio, snap.last_error) == (0, 0.5, "HTTP 500")
    run(breaker, "fff")
    assert breaker.snapshot().state_value == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_threshold": 0.0}, {"failure_threshold": 1.5}, {"min_requests": 0},
     {"window_s": 0.0}, {"half_open_probes": 0}],
)
def test_config_refuses_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


def test_board_keeps_one_breaker_per_provider_and_its_transitions(clock: FakeClock) -> None:
    seen: list[Transition] = []
    board = BreakerBoard(CONFIG, clock, on_transition=seen.append)
    for _ in range(5):
        assert board.acquire("deepgram").allowed
        board.report("deepgram", ok=False, error="HTTP 503")
    assert board.acquire("openai") is Admission.ADMITTED
    board.report("openai", ok=False, error="HTTP 401", transient=False)
    snaps = board.snapshots()
    assert snaps["deepgram"].state is BreakerState.OPEN
    assert snaps["openai"].state is BreakerState.CLOSED and snaps["openai"].needs_attention
    seq, new = board.transitions_since(0)
    assert seq == 1 and [(t.provider, t.to_state) for t in new] == [("deepgram", "open")]
    clock.advance(15.0)
    seq2, newer = board.transitions_since(seq)  # time alone moves open -> half_open
    assert seq2 == 2 and [t.to_state for t in newer] == ["half_open"]
    assert [t.to_state for t in seen] == ["open", "half_open"]
