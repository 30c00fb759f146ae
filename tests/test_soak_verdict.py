"""The soak's verdict (``make soak``, ``tests/faults/soak.py``) without running one: the growth
is the slope of RSS against calls served after the warm-up, and the run passes only when every
measured call actor grew less than the target per 100 calls."""

from __future__ import annotations

import pytest

from tests.faults.soak import (
    MIN_STEADY_CALLS,
    TARGET_MB_PER_100,
    WARM_UP_CALLS,
    _summary,
    passed,
    slope,
)

pytestmark = pytest.mark.unit

MB = 2**20


def _actor(mb_per_call: float, calls: int = 40, first_mb: float = 250.0,
           warm_up_jump_mb: float = 0.0) -> list[tuple[int, int]]:
    """RSS after each call: a jump during the warm-up, then ``mb_per_call`` per call."""
    out = []
    for n in range(1, calls + 1):
        mb = first_mb + (warm_up_jump_mb if n > 3 else 0.0) + mb_per_call * n
        out.append((n, int(mb * MB)))
    return out


def test_slope_is_bytes_per_call() -> None:
    assert slope([(1, 100), (2, 300), (3, 500)]) == pytest.approx(200.0)
    assert slope([(5, 7)]) == 0.0  # one point: no slope, not a crash


def test_growth_is_measured_after_the_warm_up() -> None:
    # 30 MB in the first calls (caches, lazily imported code), then flat: passes
    settled = _summary({"a": _actor(0.0, warm_up_jump_mb=30.0)}, 40, {"completed": 40}, 30, 1)
    assert settled["call_actors"]["a"]["growth_mb_per_100_calls"] == pytest.approx(0.0)
    assert settled["call_actors"]["a"]["rss_mb_last"] - settled["call_actors"]["a"][
        "rss_mb_first"] == pytest.approx(30.0, abs=0.1)
    assert passed(settled)


def test_one_actor_over_the_target_fails_the_soak() -> None:
    leaking = 1.0  # MB per call: 100 MB per 100 calls, the first soak's figure
    out = _summary({"a": _actor(0.0), "b": _actor(leaking)}, 80, {"completed": 80}, 30, 2)
    assert out["growth_mb_per_100_calls_max"] == pytest.approx(100.0, rel=0.01)
    assert out["growth_mb_per_100_calls_median"] == pytest.approx(50.0, rel=0.01)
    assert not passed(out)
    just_under = TARGET_MB_PER_100 / 100 * 0.9
    assert passed(_summary({"a": _actor(just_under)}, 40, {"completed": 40}, 30, 1))


def test_an_actor_with_few_calls_is_reported_but_does_not_decide() -> None:
    # retired after a failed call at 20 calls: 10 samples after the warm-up, a noisy slope
    out = _summary({"long": _actor(0.0, calls=100), "short": _actor(0.1, calls=20)}, 120,
                   {"completed": 119, "failed": 1}, 30, 2)
    assert list(out["call_actors"]) == ["long"]
    assert out["call_actors_too_few_calls"]["short"]["growth_mb_per_100_calls"] == \
        pytest.approx(10.0, rel=0.01)
    assert passed(out)
    assert not passed(_summary({"short": _actor(0.0, calls=WARM_UP_CALLS + MIN_STEADY_CALLS - 1)},
                               40, {}, 30, 1))


def test_too_few_calls_or_an_error_is_not_a_pass() -> None:
    short = _summary({"a": _actor(0.0, calls=WARM_UP_CALLS + 2)}, 12, {}, 1, 1)
    assert short["call_actors"] == {} and not passed(short)
    assert not passed({**_summary({"a": _actor(0.0)}, 40, {}, 30, 1), "error": "boom"})
