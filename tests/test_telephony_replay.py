"""The webhook replay guard and the calls API rate limiter: pure policies, stepped clocks."""

from __future__ import annotations

import pytest

from voice_ai.telephony.rate_limit import RateLimiter
from voice_ai.telephony.replay import ReplayGuard

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# --- replay guard -------------------------------------------------------------------------------
def test_an_event_id_is_accepted_once_within_its_validity() -> None:
    clock = Clock()
    guard = ReplayGuard(clock=clock)
    assert guard.first_sighting("EV_1", valid_until=1300.0)
    assert not guard.first_sighting("EV_1", valid_until=1300.0)
    clock.t = 1299.0
    assert not guard.first_sighting("EV_1", valid_until=1300.0)
    assert guard.first_sighting("EV_2", valid_until=1300.0)


def test_ids_are_forgotten_once_their_signature_could_no_longer_verify() -> None:
    clock = Clock()
    guard = ReplayGuard(clock=clock)
    for n in range(100):
        guard.first_sighting(f"EV_{n}", valid_until=1000.0 + n)
    clock.t = 1050.5
    guard.first_sighting("EV_new", valid_until=1400.0)
    assert len(guard) == 50  # EV_51..EV_99 and EV_new: memory follows the validity window


def test_memory_is_capped_forgetting_the_id_nearest_its_expiry() -> None:
    guard = ReplayGuard(clock=Clock(), max_ids=3)
    for n, until in enumerate((1100.0, 1300.0, 1200.0, 1250.0)):
        assert guard.first_sighting(f"EV_{n}", until)
    assert len(guard) == 3
    assert guard.first_sighting("EV_0", 1100.0)  # the soonest to expire went first
    assert not guard.first_sighting("EV_1", 1300.0)


def test_an_empty_event_id_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="event id"):
        ReplayGuard().first_sighting("", 1.0)


# --- rate limiter -------------------------------------------------------------------------------
def test_a_burst_passes_then_the_rate_applies_with_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.check("token-a").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.check("token-a")
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.5)
    assert refused.retry_after_header == "1"
    clock.t += 0.5
    assert limiter.check("token-a").allowed
    assert not limiter.check("token-a").allowed


def test_keys_have_separate_buckets() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=Clock())
    assert limiter.check("a").allowed and not limiter.check("a").allowed
    assert limiter.check("b").allowed


def test_200_requests_per_second_for_5_seconds_let_through_burst_plus_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=10, clock=clock)
    allowed = 0
    for _ in range(1000):
        allowed += limiter.check("token").allowed
        clock.t += 0.005
    assert allowed == 10 + 9  # the burst, then 2 per second for 4.995 s


def test_keys_are_bounded_least_recently_used_first() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=Clock(), max_keys=2)
    for key in ("a", "b", "c"):
        limiter.check(key)
    assert limiter.check("a").allowed  # "a" was dropped: a fresh (full) bucket
    assert not limiter.check("c").allowed


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (1.0, 0)])
def test_nonsense_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst)
