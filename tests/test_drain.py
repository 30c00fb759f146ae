"""``voice-ai drain NODE`` without Ray: the dispatcher readies a call actor off the draining
node before a call hands over (in-memory call actors, ``tests/fakes/calls.py``), and a bad
node id costs one line and exit code 2. The drain on a real multi-node cluster, through the
command itself, is in ``tests/test_multinode.py``."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from deployments.cli import app
from deployments.ops_cli import resolve_node
from tests.test_dispatch_policy import (  # noqa: F401  # browser_offer: a fixture
    browser_offer,
    ready,
    settle,
)
from tests.test_resume_supervisor import ResumeWorld, checkpoint
from voice_ai.pipeline.checkpoint import ResumeCause
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome
from voice_ai.webrtc.signalling import SdpOffer

pytestmark = pytest.mark.unit

NODES = ["3f9a" + "0" * 52, "3f9b" + "1" * 52, "c07e" + "2" * 52]


async def test_a_call_hands_over_only_once_an_actor_off_the_node_is_ready_for_it() -> None:
    world = ResumeWorld(warm_target=1)
    d = await ready(world)
    world.factory.actor_options["prepare"] = "hang"  # every actor started from now on is slow
    (call_id,) = await world.start()
    first = world.factory.running(call_id)
    assert d.checkpoint(checkpoint(call_id, 1))
    report = await d.drain_node(first.node_id)
    await settle()
    assert report.handing_over == (call_id,)
    # no warm actor off the node: one is starting; the call goes on where it is meanwhile
    assert world.factory.running(call_id) is first and not first.host.handover.is_set()
    assert (await d.drain_status(first.node_id)).calls_left == (call_id,)
    assert (await d.drain_node(first.node_id)).handing_over == (call_id,)  # asked again: no
    starting = [a for a in world.factory.created if a.prepare_mode == "hang"]  # 2nd actor
    for actor in starting:
        actor.release_prepare()
    await settle()
    second = world.factory.running(call_id)
    assert second is not first and second.node_id != first.node_id
    assert not (await d.drain_status(first.node_id)).calls_left
    second.finish(call_id)
    record = await d.wait_call(call_id)
    assert record.outcome is CallOutcome.COMPLETED
    assert [t.index for t in record.turns] == [0, 1]  # the turn before the move, one after
    assert list(world.records.stored) == [call_id]
    (event,) = world.log.events
    assert event.cause is ResumeCause.DRAIN and event.from_node == first.node_id
    assert all(a.retired for a in world.factory.created if a.node_id == first.node_id)


async def test_a_drain_waits_for_a_cold_start_slower_than_the_prepare_timeout() -> None:
    # under a busy loop a cold start took over a minute (the prepare timeout is 60 s) and the
    # drain gave up: the call then stayed on the node for good
    world = ResumeWorld(warm_target=1, prepare_timeout_s=0.02)
    d = await ready(world)
    world.factory.actor_options["prepare"] = "hang"
    (call_id,) = await world.start()
    first = world.factory.running(call_id)
    assert d.checkpoint(checkpoint(call_id, 1))
    await d.drain_node(first.node_id)
    await asyncio.sleep(0.15)  # several prepare timeouts go by
    assert world.factory.running(call_id) is first and not first.host.handover.is_set()
    waiting = [a for a in world.factory.alive if a.prepare_mode == "hang" and not a.prepared]
    assert waiting  # the drain's actor is still starting, not retired
    for actor in waiting:
        actor.release_prepare()
    await settle()
    second = world.factory.running(call_id)
    assert second is not first and second.node_id != first.node_id
    second.finish(call_id)
    assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED
    (event,) = world.log.events
    assert event.cause is ResumeCause.DRAIN


async def test_a_call_that_ends_before_its_hand_over_leaves_the_ready_actor_a_spare() -> None:
    world = ResumeWorld(warm_target=1)
    d = await ready(world)
    world.factory.actor_options["prepare"] = "hang"
    (call_id,) = await world.start()
    first = world.factory.running(call_id)
    await d.drain_node(first.node_id)
    await settle()
    first.finish(call_id)  # the caller hangs up while the new actor is still starting
    assert (await d.wait_call(call_id)).outcome is CallOutcome.COMPLETED
    for actor in world.factory.created:
        actor.release_prepare()
    await settle()
    assert world.log.events == []  # nothing was moved
    idle = d.status().warm_ready
    assert idle >= 1 and all(  # the actors ready now are spares, none on the drained node
        a.node_id != first.node_id for a in world.factory.alive if a.prepared)


async def test_a_browser_call_stays_on_a_draining_node_until_it_ends(
        browser_offer: SdpOffer) -> None:  # noqa: F811  # the fixture imported above
    world = ResumeWorld(warm_target=2)
    d = await ready(world)
    result = await d.offer_call(CallSpec(call_id="web1", webrtc_offer=browser_offer))
    await settle()
    actor = world.factory.running(result.call_id)
    report = await d.drain_node(actor.node_id)
    await settle()
    # handing it over would end it (its WebRTC connection lives in this actor): it stays
    assert report.handing_over == () and report.calls_left == (result.call_id,)
    assert world.factory.running(result.call_id) is actor and not actor.host.handover.is_set()
    actor.finish(result.call_id)
    assert (await d.wait_call(result.call_id)).outcome is CallOutcome.COMPLETED
    assert not (await d.drain_status(actor.node_id)).calls_left and actor.retired


def test_a_node_id_is_resolved_from_a_unique_prefix() -> None:
    assert resolve_node("c07e", NODES) == NODES[2]
    assert resolve_node(NODES[0].upper(), NODES) == NODES[0]
    with pytest.raises(ValueError, match="'3f9' matches 2 live nodes; give more of its id"):
        resolve_node("3f9", NODES)
    with pytest.raises(ValueError, match="no live node's id starts with 'abc'"):
        resolve_node("abc", NODES)
    with pytest.raises(ValueError, match="'node-b' is not a node id"):
        resolve_node("node-b", NODES)


def test_drain_with_a_malformed_node_id_is_one_line_and_exit_2_without_a_cluster() -> None:
    import ray

    # the suite's shared Ray may already be up in this process (tests run in any order)
    before = ray.get_runtime_context().get_job_id() if ray.is_initialized() else None
    result = CliRunner().invoke(app, ["drain", "worker-2"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: 'worker-2' is not a node id: hex digits, as `ray list nodes` and "
        "/health/detailed show them"]
    # nothing attached, started or shut down
    after = ray.get_runtime_context().get_job_id() if ray.is_initialized() else None
    assert after == before
