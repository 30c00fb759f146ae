"""The warm pool's refill policy (voice_ai.calls.warm_pool): how many call actors to start, and
when, so that refills do not take the CPU from live calls."""

from __future__ import annotations

import pytest

from voice_ai.calls.warm_pool import Spare, WarmPool

pytestmark = pytest.mark.unit


class Actor:
    """Only a name: the policy never calls the actor."""

    def __init__(self, name: str) -> None:
        self.name = name


def _full_pool(target: int) -> WarmPool:
    pool = WarmPool(target=target, max_calls=20)
    for i in range(target):
        pool.add(Spare(Actor(f"callactor-{i}"), "node-1"))  # type: ignore[arg-type]
    return pool


def _burst(pool: WarmPool, calls: int) -> list[Spare]:
    taken = []
    for _ in range(calls):
        spare = pool.take()
        assert spare is not None
        pool.call_started(spare)
        taken.append(spare)
    return taken


def test_a_burst_that_takes_every_spare_starts_no_cold_actor_while_its_calls_run() -> None:
    pool = _full_pool(8)
    _burst(pool, 8)
    assert pool.to_start(busy=True) == 0  # all 8 come back when their calls end


def test_a_resume_reserve_is_still_kept_during_the_burst_one_start_at_a_time() -> None:
    pool = _full_pool(8)
    _burst(pool, 8)
    assert pool.to_start(busy=True, reserve=1) == 1
    pool.starting += 1
    assert pool.to_start(busy=True, reserve=1) == 0


def test_actors_that_will_not_come_back_are_replaced_one_at_a_time_under_load() -> None:
    pool = WarmPool(target=4, max_calls=1)  # every actor retires after its call
    for i in range(4):
        pool.add(Spare(Actor(f"callactor-{i}"), "node-1"))  # type: ignore[arg-type]
    _burst(pool, 3)
    assert pool.to_start(busy=True) == 1
    pool.starting += 1
    assert pool.to_start(busy=True) == 0


def test_when_the_calls_are_over_the_retired_actors_are_replaced_at_once() -> None:
    pool = _full_pool(8)
    taken = _burst(pool, 8)
    for spare in taken[:5]:  # 5 calls failed: their actors retire
        assert not pool.call_finished(spare, reusable=True, completed=False)
    for spare in taken[5:]:
        assert pool.call_finished(spare, reusable=True, completed=True)
        pool.put_back(spare)
    assert pool.to_start(busy=False) == 5  # back to the target of 8, in one go
