"""The dispatcher carries a call on when its call actor dies, or hands it over when its node
drains, without Ray: in-memory call actors (``tests/fakes/calls.py``), millisecond deadlines.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.test_dispatch_policy import (  # noqa: F401  # browser_offer: a fixture
    World,
    browser_offer,
    ready,
    settle,
)
from voice_ai.calls.dispatch import CallDispatch
from voice_ai.calls.resume import ResumeEvent, ResumePolicy, Resumption
from voice_ai.pipeline.checkpoint import CallCheckpoint, ResumeCause, SavedCheckpoint, seal
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome, EndReason, TurnTimings
from voice_ai.webrtc.signalling import SdpOffer

pytestmark = pytest.mark.unit


class ResumeLogFake:
    def __init__(self) -> None:
        self.events: list[ResumeEvent] = []

    async def resumed(self, event: ResumeEvent) -> None:
        self.events.append(event)


class ResumeWorld(World):
    def __init__(self, *, deadline_s: float = 1.0, enabled: bool = True,
                 **options: object) -> None:
        self.log = ResumeLogFake()
        self.resume_policy = ResumePolicy(enabled=enabled, deadline_s=deadline_s, max_times=2)
        super().__init__(**options)  # type: ignore[arg-type]  # policy overrides by name

    def new_dispatcher(self) -> CallDispatch:
        return CallDispatch(self.policy, self.factory, self.records, self.journal,
                            self.telemetry, self.busy,
                            resumption=Resumption(self.resume_policy, self.log))


def checkpoint(call_id: str, turns: int, *, version: int = 1) -> SavedCheckpoint:
    saved = seal(CallCheckpoint(
        call_id=call_id, saved_at=1000.0 + turns, turn_count=turns, started_at=990.0,
        turns=tuple(TurnTimings(index=i, ended_speaking_at=995.0 + i, e2e_s=0.6,
                                user_text=f"line {i}") for i in range(turns)),
        version=version), 65_536)
    return saved


async def test_a_call_whose_actor_dies_is_carried_on_by_another_with_one_record() -> None:
    world = ResumeWorld()
    d = await ready(world)
    (call_id,) = await world.start()
    first = world.factory.running(call_id)
    assert d.checkpoint(checkpoint(call_id, 1)) and d.checkpoint(checkpoint(call_id, 2))
    assert not d.checkpoint(checkpoint(call_id, 1))  # an older one does not replace it
    first.die()  # SIGKILL after turn 2
    await settle()
    second = world.factory.running(call_id)
    assert second is not first and second.node_id != first.node_id
    assert d.status().active_calls == 1  # the call holds its one slot while it moves

    second.finish(call_id)
    record = await d.wait_call(call_id)
    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert [t.index for t in record.turns] == [0, 1, 2]  # turns 1-2 restored, one more here
    assert list(world.records.stored) == [call_id]  # one record, stored by the last actor
    (event,) = world.log.events
    assert (event.call_id, event.cause, event.attempt, event.turns_restored) == (
        call_id, ResumeCause.ACTOR_LOST, 1, 2)
    assert 0 <= event.gap_s < 1.0 and event.from_node == first.node_id
    status = d.status()
    assert status.active_calls == 0 and status.accepted_total == 1
    assert status.resume is not None and status.resume.resumed_total == 1
    assert status.resume.checkpoints_held == 0  # forgotten once the call ended


async def test_a_call_lost_before_its_first_turn_is_carried_on_from_nothing() -> None:
    world = ResumeWorld()
    d = await ready(world)
    (call_id,) = await world.start()
    world.factory.running(call_id).die()
    await settle()
    world.factory.running(call_id).finish(call_id)
    record = await d.wait_call(call_id)
    assert record.outcome is CallOutcome.COMPLETED and len(record.turns) == 1
    assert world.log.events[0].turns_restored == 0


async def test_no_actor_listening_within_the_deadline_fails_the_call_with_its_turns() -> None:
    world = ResumeWorld(deadline_s=0.05)
    d = await ready(world)
    (call_id,) = await world.start()
    d.checkpoint(checkpoint(call_id, 2))
    for actor in world.factory.created:  # every other actor hangs when asked to resume
        actor.begin_mode = "hang"
    world.factory.actor_options["begin"] = "hang"
    world.factory.running(call_id).die()
    record = await asyncio.wait_for(d.wait_call(call_id), 5)
    assert record.end_reason is EndReason.NODE_LOST
    assert "not resumed" in record.error and "RESUME_DEADLINE_S=0.05" in record.error
    assert [t.user_text for t in record.turns] == ["line 0", "line 1"]  # what was said stays
    assert world.records.stored[call_id] == record and not world.log.events
    assert d.status().active_calls == 0
    assert d.status().resume.resume_failed_total == 1  # type: ignore[union-attr]


async def test_an_unreadable_checkpoint_is_refused_with_its_reason() -> None:
    world = ResumeWorld()
    d = await ready(world)
    (call_id,) = await world.start()
    d.checkpoint(checkpoint(call_id, 1, version=99))
    world.factory.running(call_id).die()
    record = await asyncio.wait_for(d.wait_call(call_id), 5)
    assert record.end_reason is EndReason.NODE_LOST
    assert "checkpoint version 99 is not supported" in record.error


async def test_with_resume_off_a_lost_call_ends_as_node_lost() -> None:
    world = ResumeWorld(enabled=False)
    d = await ready(world)
    (call_id,) = await world.start()
    world.factory.running(call_id).die()
    record = await d.wait_call(call_id)
    assert record.end_reason is EndReason.NODE_LOST and "not resumed" not in record.error


async def test_a_browser_call_is_not_resumed_and_says_why(
        browser_offer: SdpOffer) -> None:  # noqa: F811  # the fixture imported above
    world = ResumeWorld()
    d = await ready(world)
    result = await d.offer_call(CallSpec(call_id="web1", webrtc_offer=browser_offer))
    await settle()
    world.factory.running(result.call_id).die()
    record = await d.wait_call(result.call_id)
    assert record.end_reason is EndReason.NODE_LOST and "browser call" in record.error


async def test_a_drained_node_hands_its_calls_over_and_takes_no_new_actor() -> None:
    world = ResumeWorld(warm_target=2)
    d = await ready(world)
    ids = await world.start(3)
    node = world.factory.running(ids[0]).node_id
    on_node = [c for c in ids if world.factory.running(c).node_id == node]
    report = await d.drain_node(node)
    await settle()
    assert set(report.handing_over) == set(on_node)
    for call_id in ids:  # every call runs on, none on the drained node
        assert world.factory.running(call_id).node_id != node
    for call_id in on_node:  # each moved call's new actor joined its line before the hand-over
        assert world.factory.running(call_id).stood_by == [call_id]
    assert all(a.node_id != node for a in world.factory.alive)
    assert not (await d.drain_status(node)).calls_left
    for call_id in ids:
        world.factory.running(call_id).finish(call_id)
        assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED
    assert sorted(world.records.stored) == sorted(ids)
    assert {e.cause for e in world.log.events} == {ResumeCause.DRAIN}
    status = d.status().resume
    assert status is not None
    assert status.handed_over_total == status.stood_by_total == len(on_node)


async def test_a_spare_is_taken_off_the_lost_node_when_it_can_be() -> None:
    world = ResumeWorld(warm_target=3)
    d = await ready(world)
    (call_id,) = await world.start()
    lost = world.factory.running(call_id)
    lost.die()
    await settle()
    assert world.factory.running(call_id).node_id != lost.node_id
    world.factory.running(call_id).finish(call_id)
    assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED


async def test_a_silent_spare_on_the_lost_node_is_passed_over_for_a_cold_one() -> None:
    # the only warm actor sits on the node that was lost: a resume on it would wait until Ray
    # declares the node dead, past the deadline; it is asked first, briefly, and passed over
    world = ResumeWorld(deadline_s=1.0, warm_target=1)
    world.resume_policy = ResumePolicy(enabled=True, deadline_s=1.0, max_times=2,
                                       same_node_probe_s=0.05)
    world.dispatch = world.new_dispatcher()
    world.factory.nodes = ("node-0",)
    d = await ready(world)
    (call_id,) = await world.start()
    await settle()
    lost = world.factory.running(call_id)
    (spare,) = [a for a in world.factory.alive if a is not lost]
    assert spare.node_id == lost.node_id
    spare.lose_node()
    world.factory.nodes = ("node-1",)  # a cold start lands on a live node
    lost.die()
    for _ in range(100):  # the probe (50 ms), then a cold start
        if world.log.events:
            break
        await asyncio.sleep(0.01)
    carried = world.factory.running(call_id)
    assert carried is not spare and carried.node_id == "node-1" and spare.retired
    (event,) = world.log.events
    assert event.gap_s < 0.5  # the probe, not a wait for the node's death
    carried.finish(call_id)
    assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED


async def test_after_a_loss_the_silent_spares_of_that_node_are_retired() -> None:
    # the node went with a call and a spare on it: the call resumes elsewhere, and the spare,
    # which would hang a call begun on it until Ray declares the node dead, is asked and retired
    world = ResumeWorld(warm_target=3)
    world.resume_policy = ResumePolicy(enabled=True, deadline_s=1.0, max_times=2,
                                       same_node_probe_s=0.05)
    world.dispatch = world.new_dispatcher()
    d = await ready(world)
    (call_id,) = await world.start()
    await settle()
    lost = world.factory.running(call_id)
    same_node = [a for a in world.factory.alive if a is not lost and a.node_id == lost.node_id]
    other_node = [a for a in world.factory.alive if a.node_id != lost.node_id]
    assert same_node and other_node
    for actor in same_node:
        actor.lose_node()
    lost.die()
    for _ in range(100):
        if all(a.retired for a in same_node):
            break
        await asyncio.sleep(0.01)
    assert all(a.retired for a in same_node)
    assert world.factory.running(call_id) in other_node  # resumed on a warm one elsewhere
    assert not any(a.retired for a in other_node)
    world.factory.running(call_id).finish(call_id)
    assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED


async def test_while_calls_are_live_one_actor_is_kept_idle_for_a_resume() -> None:
    world = ResumeWorld(warm_target=1)
    d = await ready(world)
    (call_id,) = await world.start()
    await settle()
    assert d.status().warm_ready == 1  # its own actor will come back, and one waits besides
    first = world.factory.running(call_id)
    first.die()
    await settle()
    second = world.factory.running(call_id)
    assert second.prepared and not second.retired  # a warm one took the call at once
    second.finish(call_id)
    assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED


@pytest.mark.parametrize("lost", [0, 1])
async def test_with_calls_on_two_nodes_the_reserve_is_on_two_nodes_and_survives_either(
        lost: int) -> None:
    # a scheduler that packs would put both reserve actors on node-0: losing node-0 would
    # then leave its call no warm actor (a cold start: seconds of silence, 25 s in a test)
    world = ResumeWorld(warm_target=2)
    d = await ready(world)  # the two warm actors went round: node-0, node-1
    world.factory.pack = True
    ids = await world.start(2)
    await settle()
    in_calls = [world.factory.running(c) for c in ids]
    assert sorted(a.node_id for a in in_calls) == ["node-0", "node-1"]
    spares = [a for a in world.factory.alive if a not in in_calls]
    assert d.status().warm_ready == 2 and sorted(a.node_id for a in spares) == [
        "node-0", "node-1"]
    gone = in_calls[lost].node_id
    for actor in spares:
        if actor.node_id == gone:
            actor.lose_node()
    in_calls[lost].die()
    await settle()
    carried = world.factory.running(ids[lost])
    assert carried in spares and carried.node_id != gone  # warm, off the lost node
    (event,) = world.log.events
    assert event.gap_s < 0.5
    for call_id in ids:
        world.factory.running(call_id).finish(call_id)
        assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED


async def test_with_calls_on_one_node_one_reserve_is_kept_off_it() -> None:
    world = ResumeWorld(warm_target=1)
    world.factory.nodes = ("node-0", "node-1")
    world.factory.pack = True
    d = await ready(world)
    assert world.factory.preferred_off == [frozenset()]  # no call: placed by the policy
    (call_id,) = await world.start()
    await settle()
    assert world.factory.running(call_id).node_id == "node-0"
    (spare,) = [a for a in world.factory.alive if a is not world.factory.running(call_id)]
    assert d.status().warm_ready == 1 and spare.node_id == "node-1"
    assert world.factory.preferred_off[-1] == {"node-0"}
    world.factory.running(call_id).finish(call_id)
    assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED
