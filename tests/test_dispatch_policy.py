"""The dispatcher's policies without Ray: admission, warm pool, supervision, recovery.

In-memory ports (``tests/fakes/calls.py``) and deadlines of a few milliseconds; no sleeps.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.fakes.calls import (
    FakeFactory,
    FakeJournal,
    FakeRecords,
    FakeTelemetry,
    RecordingBusyPlayer,
)
from voice_ai.calls.dispatch import CallDispatch, DispatchPolicy
from voice_ai.pipeline.admission import Decision
from voice_ai.pipeline.scenario import CallerLine, Scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome, EndReason
from voice_ai.webrtc.signalling import OfferDecision, SdpOffer

pytestmark = pytest.mark.unit

SCENARIO = Scenario(name="t", turns=(CallerLine(say="hello"),))


def policy(**overrides: object) -> DispatchPolicy:
    values: dict[str, object] = {
        "max_concurrent_calls": 4, "warm_target": 2, "max_calls_per_actor": 3,
        "prepare_timeout_s": 0.05, "begin_timeout_s": 0.05, "call_deadline_s": 5.0,
        "reply_timeout_s": 0.05, "journal_timeout_s": 0.05, "busy_concurrency": 2,
        "busy_queue": 3, "busy_play_timeout_s": 0.05, "refill_backoff_s": 0.001,
        "refill_backoff_max_s": 0.002, "refill_attempts": 2}
    values.update(overrides)
    return DispatchPolicy(**values)  # type: ignore[arg-type]  # test overrides by name


class World:
    """One dispatcher and everything it talks to."""

    def __init__(self, *, busy_player: RecordingBusyPlayer | None = None,
                 **options: object) -> None:
        self.records = FakeRecords()
        self.telemetry = FakeTelemetry()
        self.journal = FakeJournal()
        self.journal.records = self.records
        self.factory = FakeFactory(self.records, self.telemetry)
        self.busy = busy_player or RecordingBusyPlayer()
        self.policy = policy(**options)
        self.dispatch = self.new_dispatcher()

    def new_dispatcher(self) -> CallDispatch:
        return CallDispatch(self.policy, self.factory, self.records, self.journal,
                            self.telemetry, self.busy)

    async def start(self, n: int = 1, *, room: str | None = None) -> list[str]:
        ids = []
        for _ in range(n):
            spec = (CallSpec(call_id=uuid.uuid4().hex[:8], room=room) if room
                    else CallSpec(call_id=uuid.uuid4().hex[:8], scenario=SCENARIO))
            result = await self.dispatch.start_call(spec, key=room)
            ids.append(result.call_id)
        await settle()
        return ids


async def settle() -> None:
    for _ in range(20):  # let the supervision tasks run their next steps
        await asyncio.sleep(0)


@pytest.fixture
def world() -> Iterator[World]:
    yield World()


async def ready(world: World) -> CallDispatch:
    world.dispatch.mark_ready()
    assert await world.dispatch.fill_warm_pool() == world.policy.warm_target
    return world.dispatch


async def test_burst_admits_the_limit_and_records_every_rejection(world: World) -> None:
    d = await ready(world)
    specs = [CallSpec(call_id=f"c{i}", room=f"room-{i}") for i in range(10)]
    results = [await d.start_call(s, key=s.room) for s in specs]
    decisions = [r.decision for r in results]
    assert decisions.count(Decision.ACCEPTED) == 4
    assert decisions.count(Decision.REJECTED) == 6
    await d.drain_busy_line()
    rejected = [r.call_id for r in results if r.decision is Decision.REJECTED]
    # 6 rejections, queue of 3 and 2 workers: every one recorded, none dropped
    kept = {**world.records.stored, **{r.call_id: r for r in world.records.spooled}}
    assert {c: kept[c].end_reason for c in rejected} == dict.fromkeys(rejected,
                                                                      EndReason.REJECTED_BUSY)
    assert len(world.busy.rooms) + d.status().busy_overflow_total == 6
    assert d.status().active_calls == 4


async def test_a_call_just_ended_is_found_while_its_actor_is_being_recycled(
        world: World) -> None:
    d = await ready(world)
    (call_id,) = await world.start()
    actor = world.factory.running(call_id)
    actor.slow_reset = asyncio.Event()
    actor.finish(call_id)
    await settle()
    assert call_id not in d.status().active_call_ids  # no longer live: its reset is pending
    waiting = asyncio.ensure_future(d.wait_call(call_id))  # raised "unknown call id" here
    await settle()
    assert not waiting.done()  # the record comes once the actor is back in the pool
    actor.slow_reset.set()
    assert (await waiting).outcome is CallOutcome.COMPLETED
    assert d.status().warm_ready == world.policy.warm_target


async def test_busy_line_is_bounded_when_the_message_hangs() -> None:
    world = World(busy_player=RecordingBusyPlayer(hang=True), max_concurrent_calls=1)
    d = await ready(world)
    await d.start_call(CallSpec(call_id="first", room="r0"), key="r0")
    for i in range(1, 20):
        await d.start_call(CallSpec(call_id=f"c{i}", room=f"r{i}"), key=f"r{i}")
    status = d.status()
    assert status.busy_pending <= 3  # the queue, plus 2 workers: never 19 tasks
    assert status.busy_overflow_total >= 19 - 3 - 2
    await d.drain_busy_line()  # each hanging message times out (0.05 s) and is recorded
    assert sum(c.startswith("c") for c in world.records.stored) + len(
        world.records.spooled) == 19


async def test_completed_calls_return_their_actor_until_its_limit() -> None:
    world = World(max_calls_per_actor=2)
    d = await ready(world)
    served_by = []
    for _ in range(3):
        (call_id,) = await world.start()
        actor = world.factory.running(call_id)
        served_by.append(actor.name)
        actor.finish(call_id)
        assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED
        await settle()
    # call 1 on actor 1 (back in the pool), call 2 on actor 2 (back), call 3 on actor 1 again:
    # its 2nd call, its limit, so it retires and one replacement is started
    assert served_by == ["callactor-1", "callactor-2", "callactor-1"]
    assert await d.fill_warm_pool() == 2
    status = d.status()
    assert (status.call_actors_reused_total, status.call_actors_started_total) == (2, 3)
    assert world.factory.created[0].retired and not world.factory.created[1].retired
    # every record written by the call actor itself, once, and CALL_END after it
    assert len(world.records.stored) == 3 and world.records.writes == 3
    assert [r.call_id for r in world.telemetry.ended] == list(world.records.stored)


async def test_a_pool_of_one_reuses_its_actor_instead_of_replacing_it() -> None:
    world = World(warm_target=1, max_calls_per_actor=5)
    d = await ready(world)
    for _ in range(3):
        (call_id,) = await world.start()
        world.factory.running(call_id).finish(call_id)
        await d.wait_call(call_id)
        await settle()
    assert len(world.factory.created) == 1  # one actor served the three calls in turn
    assert d.status().call_actors_reused_total == 3


async def test_a_failed_call_retires_its_actor(world: World) -> None:
    d = await ready(world)
    (call_id,) = await world.start()
    actor = world.factory.running(call_id)
    actor.finish(call_id, EndReason.ERROR)
    assert (await d.wait_call(call_id)).outcome is CallOutcome.FAILED
    await settle()
    assert actor.retired
    assert actor not in [s.actor for s in d._pool.spares()]


@pytest.mark.parametrize("mode", ["fail", "hang"])
async def test_a_failed_or_stuck_prepare_leaks_no_actor(mode: str) -> None:
    world = World()
    world.factory.actor_options = {"prepare": mode}
    world.dispatch.mark_ready()
    assert await world.dispatch.fill_warm_pool() == 0  # gives up after 2 rounds, backs off
    created = world.factory.created
    assert len(created) == 4  # 2 rounds of 2
    assert all(a.retired for a in created)  # every half-started actor stopped
    assert world.dispatch.status().prepare_failures_total == 4
    world.factory.actor_options = {}
    assert await world.dispatch.fill_warm_pool() == 2  # the next kick tries again


async def test_refill_under_load_starts_one_actor_at_a_time() -> None:
    world = World(warm_target=4, max_calls_per_actor=1)
    await ready(world)
    before = len(world.factory.created)
    world.factory.actor_options = {"prepare": "hang"}  # every new actor takes its time
    await world.start(3)
    # 3 calls took 3 spares that will not come back (1 call per actor): 3 missing, but under
    # load only one is started at a time
    assert len(world.factory.created) - before == 1


async def test_a_stuck_begin_frees_the_slot_and_records_why(world: World) -> None:
    d = await ready(world)
    for a in world.factory.created:
        a.begin_mode = "hang"
    (call_id,) = await world.start()
    record = await d.wait_call(call_id)
    assert record.outcome is CallOutcome.FAILED
    assert record.end_reason is EndReason.TIMEOUT and "begin on callactor-" in record.error
    assert world.records.stored[call_id] == record
    assert d.status().active_calls == 0
    assert world.telemetry.ended[-1].call_id == call_id


async def test_a_call_past_its_deadline_is_stopped() -> None:
    world = World(call_deadline_s=0.05)
    d = await ready(world)
    (call_id,) = await world.start()
    actor = world.factory.running(call_id)
    record = await d.wait_call(call_id)
    assert (record.end_reason, actor.retired) == (EndReason.TIMEOUT, True)
    assert d.status().active_calls == 0


async def test_an_actor_that_dies_mid_call_ends_the_call_as_node_lost(world: World) -> None:
    d = await ready(world)
    ids = await world.start(3)
    world.factory.running(ids[1]).die()
    record = await d.wait_call(ids[1])
    assert record.end_reason is EndReason.NODE_LOST and "call actor lost" in record.error
    assert world.records.stored[ids[1]] == record
    assert d.status().active_calls == 2
    for call_id in (ids[0], ids[2]):
        world.factory.running(call_id).finish(call_id)
        assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED


@pytest.mark.parametrize("dead", [1, 2])
async def test_a_warm_actor_that_died_idle_is_passed_over_when_a_call_begins(dead: int) -> None:
    # its node was lost with no call on it, so nobody noticed: the spare stayed in the pool,
    # and a new call that took it failed at once (seen in the multi-node scenario)
    world = World(warm_target=2)
    d = await ready(world)
    warm = list(world.factory.alive)
    gone = warm[:dead]
    for actor in gone:
        actor.die()
    (call_id,) = await world.start()
    await settle()
    carrying = world.factory.running(call_id)
    assert carrying not in gone and all(a.retired for a in gone)
    assert (carrying in warm) == (dead == 1)  # the other warm actor, or one started for it
    carrying.finish(call_id)
    record = await d.wait_call(call_id)
    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert record.warm_start == (dead == 1)
    assert d.status().active_calls == 0


async def test_cancel_room_records_the_reason(world: World) -> None:
    d = await ready(world)
    (call_id,) = await world.start(room="call-room-1")
    assert d.cancel_room("call-room-1", EndReason.ERROR)
    record = await d.wait_call(call_id)
    assert record.end_reason is EndReason.ERROR and "cancelled" in record.error
    assert not d.cancel_room("call-room-1", EndReason.ERROR)


async def test_duplicate_room_is_one_call(world: World) -> None:
    d = await ready(world)
    a = await d.start_call(CallSpec(call_id="x1", room="r"), key="r")
    b = await d.start_call(CallSpec(call_id="x2", room="r"), key="r")
    assert (a.decision, b.decision, b.call_id) == (Decision.ACCEPTED, Decision.DUPLICATE, "x1")


async def test_live_calls_survive_a_dispatcher_restart(world: World) -> None:
    old = await ready(world)
    ids = await world.start(3)
    (ended,) = await world.start(1)
    world.factory.running(ended).finish(ended)  # ends while no dispatcher watches
    await old.close()  # the dispatcher process dies: its tasks stop, the actors carry on
    await settle()
    assert ended in world.records.stored  # the actor stored its own record

    new = world.dispatch = world.new_dispatcher()
    report = await new.recover()
    assert (report.adopted_busy, report.adopted_ended, report.lost_admissions) == (3, 1, 0)
    status = new.status()
    assert status.active_calls == 3 and set(status.active_call_ids) == set(ids)
    assert status.accepted_total == 0  # adopted, not admitted again
    # a new call is admitted against the rebuilt limit: 3 live + 1 = the limit of 4
    assert (await world.start(1)) and new.status().active_calls == 4
    extra = await new.start_call(CallSpec(call_id="over", scenario=SCENARIO))
    assert extra.decision is Decision.REJECTED
    for call_id in ids:
        world.factory.running(call_id).finish(call_id)
        record = await new.wait_call(call_id)
        assert record.outcome is CallOutcome.COMPLETED
    assert all(world.records.stored[c].outcome is CallOutcome.COMPLETED for c in ids)
    assert new.status().active_calls == 1  # the one started after the restart


async def test_recovery_records_an_admission_whose_actor_died_meanwhile(world: World) -> None:
    old = await ready(world)
    ids = await world.start(2)
    await old.close()
    world.factory.running(ids[0]).die()  # SIGKILL while no dispatcher was alive

    new = world.new_dispatcher()
    report = await new.recover()
    assert (report.adopted_busy, report.unreachable, report.lost_admissions) == (1, 1, 1)
    lost = world.records.stored[ids[0]]
    assert lost.end_reason is EndReason.NODE_LOST
    assert "while the dispatcher was restarting" in lost.error
    assert [r.call_id for r in world.telemetry.ended] == [ids[0]]


async def test_a_slow_actor_is_adopted_late_without_holding_admissions() -> None:
    world = World(prepare_timeout_s=5.0)
    old = await ready(world)
    (call_id,) = await world.start(1)
    await old.close()
    slow = world.factory.running(call_id)
    slow.slow_info = asyncio.Event()  # it does not answer within reply_timeout_s

    new = world.dispatch = world.new_dispatcher()
    recovery = asyncio.ensure_future(new.recover())
    other = await new.start_call(CallSpec(call_id="meanwhile", scenario=SCENARIO))
    assert other.decision is Decision.ACCEPTED  # admissions did not wait for the slow one
    slow.slow_info.set()
    report = await recovery
    assert report.adopted_busy == 1 and report.lost_admissions == 0
    assert not slow.retired and call_id in new.status().active_call_ids
    slow.finish(call_id)
    assert (await new.wait_call(call_id)).outcome is CallOutcome.COMPLETED


async def test_a_cold_started_call_survives_a_dispatcher_dying_before_it_began() -> None:
    world = World(warm_target=0)
    old = await ready(world)
    (call_id,) = await world.start(1)  # no spare: a new actor takes the call with its ticket
    await old.close()  # the dispatcher dies before anyone handed the call over
    new = world.dispatch = world.new_dispatcher()
    report = await new.recover()
    assert (report.adopted_busy, report.lost_admissions) == (1, 0)
    world.factory.running(call_id).finish(call_id)
    record = await new.wait_call(call_id)
    assert record.outcome is CallOutcome.COMPLETED and not record.warm_start


async def test_admissions_wait_for_recovery(world: World) -> None:
    d = world.dispatch
    start = asyncio.ensure_future(d.start_call(CallSpec(call_id="a", scenario=SCENARIO)))
    await settle()
    assert not start.done()
    await d.recover()
    assert (await start).decision is Decision.ACCEPTED


@pytest.fixture(scope="module")
def browser_offer() -> SdpOffer:
    """A real offer (aiortc plays the browser: microphone and data channel)."""
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack

    async def make() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(AudioStreamTrack())
        pc.createDataChannel("events")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        await pc.close()
        return sdp

    return SdpOffer(sdp=asyncio.run(make()))


async def test_a_browser_offer_is_answered_then_runs_like_any_call(
        world: World, browser_offer: SdpOffer) -> None:
    d = await ready(world)
    result = await d.offer_call(CallSpec(call_id="web-1", webrtc_offer=browser_offer))
    assert result.decision is OfferDecision.ACCEPTED
    assert result.answer is not None and result.answer.sdp == "v=0 answer for web-1"
    await settle()
    actor = world.factory.running("web-1")
    assert actor.offers == ["web-1"]
    actor.finish("web-1")
    record = await d.wait_call("web-1")
    assert (record.outcome, world.records.stored["web-1"]) == (CallOutcome.COMPLETED, record)


async def test_an_offer_no_actor_can_answer_frees_its_slot(browser_offer: SdpOffer) -> None:
    world = World(max_concurrent_calls=1)
    d = await ready(world)
    for a in world.factory.created:
        a.begin_mode = "refuse_offer"
    result = await d.offer_call(CallSpec(call_id="web-1", webrtc_offer=browser_offer))
    assert (result.decision, result.answer) == (OfferDecision.FAILED, None)
    assert "no call actor answered" in result.reason
    record = await d.wait_call("web-1")
    assert record.end_reason is EndReason.ERROR and "ICE gathering failed" in record.error
    assert d.status().active_calls == 0  # the slot is free again
    over = await d.offer_call(CallSpec(call_id="web-2", webrtc_offer=browser_offer))
    assert over.decision is OfferDecision.FAILED  # admitted (slot was free), refused again


async def test_an_offer_over_the_limit_is_rejected_and_recorded(browser_offer: SdpOffer) -> None:
    world = World(max_concurrent_calls=1)
    d = await ready(world)
    await world.start(1)
    result = await d.offer_call(CallSpec(call_id="web-x", webrtc_offer=browser_offer))
    assert (result.decision, result.answer) == (OfferDecision.REJECTED, None)
    await d.drain_busy_line()
    assert world.records.stored["web-x"].end_reason is EndReason.REJECTED_BUSY
    assert not any(a.offers for a in world.factory.created)  # no call actor was touched
