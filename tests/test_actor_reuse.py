"""A call actor whose call completed serves again, up to CALL_ACTOR_MAX_CALLS, then retires.

A second dispatcher (unnamed) in the running system's namespace, with its own warm pool of 2
and at most 2 calls per actor, shares the system's provider pools, hub and store.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import ray

from actors.dispatcher import Dispatcher
from voice_ai.pipeline.scenario import load_scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome, CallRecord

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "opening_hours.yaml"


def test_completed_call_actor_serves_again_until_its_limit(local_system) -> None:
    settings = local_system.settings.model_copy(
        update={"warm_call_actors": 2, "call_actor_max_calls": 2})
    dispatcher = Dispatcher.options(namespace=settings.ray_namespace).remote(settings)  # type: ignore[attr-defined]
    try:
        assert ray.get(dispatcher.fill_warm_pool.remote(), timeout=180) == 2
        records = []
        for _ in range(3):
            spec = CallSpec(call_id=uuid.uuid4().hex[:16], scenario=load_scenario(SCENARIO))
            record = ray.get(dispatcher.run_simulated.remote(spec), timeout=240)
            assert isinstance(record, CallRecord), record
            records.append(record)
        ready = ray.get(dispatcher.fill_warm_pool.remote(), timeout=180)  # waits for a refill
        status = ray.get(dispatcher.status.remote())
    finally:
        ray.kill(dispatcher)  # its call actors are owned by it and go with it

    assert [r.outcome for r in records] == [CallOutcome.COMPLETED] * 3, [r.error for r in records]
    assert all(r.warm_start for r in records)
    # the third call ran on the first call's actor (its 2nd call): it still hears and answers
    assert "opening hours" in records[2].turns[0].user_text.lower()
    assert records[2].turns[0].agent_text
    # calls 1 and 2 went back to the pool; call 3's actor reached the limit and retired,
    # and one replacement was started for it (2 at the start + 1)
    assert status["call_actors_reused_total"] == 2
    assert status["call_actors_started_total"] == 3
    assert ready == 2
