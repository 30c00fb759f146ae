"""The simulated caller lives outside the call actor, on a caller host (``CallerHost``): the
call actor reaches it over a line. On the running system: a simulated call completes through
the dispatcher with its caller on the host. A call actor killed mid-call leaves its caller on
the line for a new leg: the dispatcher now resumes the call over one at once, which
tests/test_resume_ray.py shows (the caller's later lines answered by the new actor)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.caller_actor import caller_host_name
from voice_ai.pipeline.scenario import load_scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome, CallRecord

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def _host(system: Any) -> Any:
    s = system.settings
    return ray.get_actor(caller_host_name(0), namespace=s.ray_namespace)


def test_a_simulated_call_runs_with_its_caller_on_the_caller_host(local_system) -> None:
    dispatcher = local_system.handles.dispatcher
    before = ray.get(_host(local_system).status.remote(), timeout=30)
    spec = CallSpec(call_id=uuid.uuid4().hex[:16],
                    scenario=load_scenario(SCENARIOS / "opening_hours.yaml"))
    record = ray.get(dispatcher.run_simulated.remote(spec), timeout=240)
    after = ray.get(_host(local_system).status.remote(), timeout=30)

    assert isinstance(record, CallRecord), record
    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert after.dialled_total == before.dialled_total + 1  # its caller was on the host
    assert all(t.e2e_s is not None for t in record.turns)  # timed by the caller's marks
    assert "opening hours" in record.turns[0].user_text.lower()
    assert Path(record.recording_path).exists()
