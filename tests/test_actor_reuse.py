"""A call actor whose call completed serves again (up to CALL_ACTOR_MAX_CALLS): three calls in a
row on the running system start no new call actor for each call.

The policy itself (limit, retirement, one replacement, failed calls retire their actor) is
tested without Ray in ``tests/test_dispatch_policy.py``; this proves the wiring: the detached,
named call actor is reset and handed the next call.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import ray

from voice_ai.pipeline.scenario import load_scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome, CallRecord

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "opening_hours.yaml"


def test_completed_call_actor_serves_again(local_system) -> None:
    dispatcher = local_system.handles.dispatcher
    assert local_system.settings.call_actor_max_calls >= 3
    before = ray.get(dispatcher.status.remote())
    records = []
    for _ in range(3):
        spec = CallSpec(call_id=uuid.uuid4().hex[:16], scenario=load_scenario(SCENARIO))
        record = ray.get(dispatcher.run_simulated.remote(spec), timeout=240)
        assert isinstance(record, CallRecord), record
        records.append(record)
    after = ray.get(dispatcher.status.remote())

    assert [r.outcome for r in records] == [CallOutcome.COMPLETED] * 3, [r.error for r in records]
    assert all(r.warm_start for r in records)
    # every call went back to the pool afterwards; no call needed a new process. With resume on,
    # a pool of one (these settings) starts one more actor once, the reserve a resume takes
    # while a call is live; from then on the two take turns.
    assert after["call_actors_reused_total"] - before["call_actors_reused_total"] == 3
    reserve = 1 if local_system.settings.resume_calls else 0
    assert after["call_actors_started_total"] - before["call_actors_started_total"] <= reserve
    # the third call, on an actor that served two before, still hears and answers
    assert "opening hours" in records[2].turns[0].user_text.lower()
    assert records[2].turns[0].agent_text
