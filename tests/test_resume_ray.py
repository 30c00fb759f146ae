"""#18 must-show on the running system: a call whose call actor is SIGKILLed after turn 2
carries on in a new call actor. The caller (on its caller host) hears a short gap and the
bridging line; turns 3 and 4 are answered by the new actor, which knows what was said in
turns 1-2 (turn 3's booking is for the service the caller named in turn 1); one record,
outcome completed, and a ``resumed`` event in the store.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import uuid
from typing import Any

import pytest
import ray

from actors.names import CALL_ACTOR_PREFIX
from voice_ai.pipeline.checkpoint import decode
from voice_ai.pipeline.scenario import CallerLine, Scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome, CallRecord

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]

MAX_GAP_S = 3.0  # the bound, on the 2-core machine


def _scenario() -> Scenario:
    return Scenario(name="resume_after_kill", reply_timeout_s=20, turns=(
        # "teeth cleaning", not "a cleaning": tiny.en heard "a clinging" in about 1 in 40 tries
        # (Piper's voice varies run to run, the VAD's padding and the batch too; a CI run failed
        # on it); "teeth cleaning" was heard right 160 times in 160
        CallerLine(say="I'd like to book a teeth cleaning, please.", pause_before_s=0.4),
        CallerLine(say="My name is Sam Patel.", pause_before_s=0.4),
        # the caller pauses after turn 2, while the actor is killed and the call resumes:
        # what a caller says with no one on the line is lost, as on a phone
        CallerLine(say="Friday at 2 pm.", pause_before_s=3.5),
        CallerLine(say="Thank you, bye.", pause_before_s=0.4)))


def _actor_of(ns: str, call_id: str) -> tuple[Any, Any]:
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == ns and entry["name"].startswith(CALL_ACTOR_PREFIX):
            handle = ray.get_actor(entry["name"], namespace=ns)
            info = ray.get(handle.info.remote(), timeout=10)
            if info.ticket is not None and info.ticket.call_id == call_id:
                return handle, info
    raise AssertionError(f"no call actor runs {call_id}")


def test_a_call_survives_its_call_actor_being_sigkilled(local_system) -> None:
    settings = local_system.settings
    dispatcher = local_system.handles.dispatcher
    spec = CallSpec(call_id=uuid.uuid4().hex[:16], scenario=_scenario(), record_audio=False)
    started = ray.get(dispatcher.start_call.remote(spec), timeout=60)
    assert started.call_id == spec.call_id

    deadline = time.monotonic() + 90
    handle, info = _actor_of(settings.ray_namespace, spec.call_id)
    while info.checkpoint is None or info.checkpoint.turn_count < 2:  # turn 2 answered
        assert time.monotonic() < deadline, info
        time.sleep(0.1)
        info = ray.get(handle.info.remote(), timeout=10)
    assert decode(info.checkpoint).turn_count == 2
    os.kill(info.pid, signal.SIGKILL)  # the call actor's process dies mid-call
    killed_at = time.time()

    record = ray.get(dispatcher.wait_call.remote(spec.call_id), timeout=120)
    assert isinstance(record, CallRecord)
    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert len(record.turns) == 4 and [t.index for t in record.turns] == [0, 1, 2, 3]
    assert "cleaning" in record.turns[0].user_text.lower()  # what turn 3 must remember
    assert all(t.e2e_s is not None for t in record.turns)  # every caller line answered
    # the new actor's reply to turn 3 books the service the caller named in turn 1
    assert "booked in for a hygienist cleaning" in record.turns[2].agent_text.lower()
    assert record.started_at < killed_at  # one call, from its admission

    with sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True) as db:
        calls = db.execute("SELECT COUNT(*) FROM calls WHERE call_id = ?",
                           (spec.call_id,)).fetchone()[0]
        events = db.execute("SELECT ts, detail FROM events WHERE kind = 'resumed' AND "
                            "event_id LIKE ?", (f"resumed:{spec.call_id}:%",)).fetchall()
    assert calls == 1  # one record
    assert len(events) == 1
    listening_at, detail = events[0]
    event = json.loads(detail)
    assert (event["cause"], event["attempt"], event["turns_restored"]) == ("actor_lost", 1, 2)
    gap = listening_at - killed_at  # killed -> the new actor listens to the caller again
    print(f"\nresume gap: {gap:.2f} s from SIGKILL to listening ({event['gap_s']} s from the "
          f"loss noticed)")
    assert 0 < gap <= MAX_GAP_S
