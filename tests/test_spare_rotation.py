"""Idle warm call actors are replaced after WARM_SPARE_MAX_IDLE_S (the autoscaler's side of the
warm pool): a spare left on a node a burst brought up would otherwise keep that node alive
for ever. Without Ray: in-memory ports and a manual clock; no sleeps."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.calls import FakeFactory, FakeJournal, FakeRecords, FakeTelemetry
from tests.test_dispatch_policy import SCENARIO, policy, settle
from voice_ai.calls.dispatch import CallDispatch
from voice_ai.calls.warm_pool import Spare, WarmPool
from voice_ai.pipeline.specs import CallSpec

pytestmark = pytest.mark.unit


class ManualTime:
    """A wall clock and a sleep that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self._waiting: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((self.now + seconds, fut))
        await fut

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [(t, f) for t, f in self._waiting if t <= self.now]
        self._waiting = [(t, f) for t, f in self._waiting if t > self.now]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)
        await settle()


def dispatcher(time: ManualTime, home_node: str = "",
               **options: object) -> tuple[CallDispatch, FakeFactory]:
    records, telemetry = FakeRecords(), FakeTelemetry()
    journal = FakeJournal()
    journal.records = records
    factory = FakeFactory(records, telemetry)
    d = CallDispatch(policy(**options), factory, records, journal, telemetry, None,
                     wall_clock=time.clock, sleep=time.sleep, home_node=home_node)
    d.mark_ready()
    return d, factory


def test_the_pool_hands_out_only_spares_idle_since_before_the_cut() -> None:
    pool = WarmPool(target=3, max_calls=5)
    for name, since in (("a", 10.0), ("b", 20.0), ("c", 30.0)):
        pool.add(Spare(actor=name, node_id="n", idle_since=since))  # type: ignore[arg-type]
    stale = pool.take_stale(idle_before=25.0)
    assert [s.actor for s in stale] == ["a", "b"]
    assert pool.idle == 1 and pool.take() is not None and pool.idle == 0


async def test_idle_spares_are_replaced_after_the_limit_and_busy_ones_are_not() -> None:
    time = ManualTime()
    d, factory = dispatcher(time, warm_target=2, spare_max_idle_s=60.0)
    assert await d.fill_warm_pool() == 2
    first = list(factory.created)
    # one spare takes a call at t+40 and comes back at t+50: idle since then
    await time.advance(40)
    result = await d.start_call(CallSpec(call_id="c1", scenario=SCENARIO))
    await settle()
    busy = factory.running(result.call_id)
    await time.advance(10)
    busy.finish(result.call_id)
    await d.wait_call(result.call_id)
    await settle()

    # checks run every 30 s (half the limit): a spare goes between 60 and 90 s idle
    await time.advance(45)  # t+95: the untouched spare is 95 s idle, the other 45 s
    await d.fill_warm_pool()
    retired = [a.name for a in first if a.retired]
    assert retired == [a.name for a in first if a is not busy]  # only the long-idle one
    assert not busy.retired
    assert d.status().warm_ready == 2  # and it was replaced
    assert len(factory.created) == 3

    await time.advance(105)  # t+200: the returned one is 150 s idle now -> replaced too
    await d.fill_warm_pool()
    assert busy.retired and d.status().warm_ready == 2
    alive = [a for a in factory.created if not a.retired]
    assert len(alive) == 2 and busy not in alive
    await d.close()


@pytest.mark.parametrize("pack", [True, False])
async def test_packed_spares_leave_the_bursts_node_once_its_calls_are_over(pack: bool) -> None:
    """CALL_ACTOR_PLACEMENT=pack: the burst's second call runs on a node of its own (the
    fake factory, like Ray's default strategy on a head whose CPU the pools hold, spills new
    actors over the nodes in turn); when the calls are over, the rotation replaces the
    spares, and the replacements go to the dispatcher's node: nothing is left on the burst's
    node, which the autoscaler can then remove. Without the preference (spread placement's
    rule while idle: none) a replacement lands there again."""
    time = ManualTime()
    d, factory = dispatcher(time, home_node="head", warm_target=1, spare_max_idle_s=2.0,
                            max_concurrent_calls=2, pack_spares=pack)
    factory.nodes = ("head", "burst")
    assert await d.fill_warm_pool() == 1
    calls = [await d.start_call(CallSpec(call_id=f"c{i}", scenario=SCENARIO))
             for i in range(2)]
    await settle()
    on = {c.call_id: factory.running(c.call_id).node_id for c in calls}
    assert sorted(on.values()) == ["burst", "head"]  # the burst brought a node up
    for c in calls:
        factory.running(c.call_id).finish(c.call_id)
        await d.wait_call(c.call_id)
    await settle()

    for _ in range(4):  # the rotation checks every 1 s: every spare replaced at least once
        await time.advance(1.5)
    await d.fill_warm_pool()
    alive = {a.name: a.node_id for a in factory.created if not a.retired}
    assert alive and d.status().warm_ready == 1
    if pack:
        assert set(alive.values()) == {"head"}, alive
        assert factory.preferred_on[-1] == frozenset({"head"})
    else:
        assert "burst" in alive.values(), alive
    await d.close()


async def test_without_a_limit_spares_stay() -> None:
    time = ManualTime()
    d, factory = dispatcher(time, warm_target=2)  # spare_max_idle_s = 0: off
    assert await d.fill_warm_pool() == 2
    await time.advance(10_000)
    assert not any(a.retired for a in factory.created) and len(factory.created) == 2
    await d.close()


def test_a_pool_of_one_with_a_resume_reserve_reuses_its_actors_call_after_call() -> None:
    """WARM_CALL_ACTORS=1 with resume on: the first call starts the reserve; from then on two
    actors take turns, and no call starts a new process (each start costs ~6 CPU-s)."""
    pool = WarmPool(target=1, max_calls=20)
    pool.add(Spare(actor=None, node_id="n1"))  # type: ignore[arg-type]
    started = 0
    for _ in range(5):
        spare = pool.take()
        assert spare is not None
        reusable = pool.call_started(spare)
        n = pool.to_start(busy=True, reserve=1)  # a call is live: keep one idle for a resume
        for _ in range(n):
            pool.add(Spare(actor=None, node_id="n1"))  # type: ignore[arg-type]
        started += n
        assert pool.call_finished(spare, reusable=reusable, completed=True, reserve=1)
        pool.put_back(spare)
    assert started == 1 and pool.idle == 2


def test_without_a_reserve_a_full_pool_still_retires_the_returning_actor() -> None:
    pool = WarmPool(target=1, max_calls=20)
    pool.add(Spare(actor=None, node_id="n1"))  # type: ignore[arg-type]
    spare = Spare(actor=None, node_id="n1")  # type: ignore[arg-type]
    assert pool.call_started(spare)
    assert not pool.call_finished(spare, reusable=True, completed=True)
