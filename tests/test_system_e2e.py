"""End to end through Ray: dispatcher -> warm CallActor -> STT/LLM/TTS pools -> Serve :port.

Real local models (faster-whisper, llama.cpp, Piper), the simulated caller at real-time pace.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest
import ray

from actors.names import worker_name
from deployments.internal_face import internal_url
from voice_ai.pipeline.admission import Decision
from voice_ai.pipeline.scenario import load_scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome, CallRecord

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "book_appointment.yaml"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=15) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _metric(text: str, name: str) -> float:
    """Sum of a metric's samples across label sets in Prometheus text."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"{name} not on /metrics"
    return total


def _run_call(local_system, spec: CallSpec) -> CallRecord:
    record = ray.get(local_system.handles.dispatcher.run_simulated.remote(spec), timeout=240)
    assert isinstance(record, CallRecord), record
    return record


def test_one_call_end_to_end_with_real_models(local_system) -> None:
    base = f"http://127.0.0.1:{local_system.settings.http_port}"
    internal = internal_url(local_system.settings)  # /metrics, /health/detailed
    before = http_get(f"{internal}/metrics")[1]
    turns_before = _metric(before, "voice_ai_response_latency_seconds_count")

    spec = CallSpec(call_id=uuid.uuid4().hex[:16], scenario=load_scenario(SCENARIO))
    record = _run_call(local_system, spec)

    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert len(record.turns) == 2
    first, second = record.turns
    # what STT heard (the real model on synthesized speech), not the script echoed back
    assert {"appointment", "tuesday"} <= _words(first.user_text), first.user_text
    # "Thank you very much, goodbye.": whisper writes the goodbye as "Bye bye." at times
    assert {"thank", "very", "much"} <= _words(second.user_text), second.user_text
    assert all(t.agent_text for t in record.turns)
    assert all(t.stt_provider == "whisper" and t.llm_provider == "local"
               and t.tts_provider == "piper" for t in record.turns)

    with wave.open(record.recording_path) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, 2)
        rate = w.getframerate()
    agent = audio[:, 1].astype(np.float32)
    voiced_s = float(np.count_nonzero(np.abs(agent) > 500)) / rate
    assert voiced_s > 1.0  # greeting and two answers: real speech, not silence

    deadline = time.time() + 15
    while True:
        text = http_get(f"{internal}/metrics")[1]
        if _metric(text, "voice_ai_response_latency_seconds_count") >= turns_before + 2:
            break
        assert time.time() < deadline, "turn timings never reached /metrics"
        time.sleep(0.5)
    for name in ("voice_ai_stt_latency_seconds_count", "voice_ai_llm_first_token_seconds_count",
                 "voice_ai_tts_first_byte_seconds_count"):
        assert _metric(text, name) >= 2
    assert "voice_ai_active_calls" in text

    # the record is durable in the store, and the audit log says so after it
    with sqlite3.connect(local_system.settings.db_path) as db:
        row = db.execute("SELECT outcome, direction FROM calls WHERE call_id = ?",
                         (record.call_id,)).fetchone()
        n_turns = db.execute("SELECT COUNT(*) FROM turns WHERE call_id = ?",
                             (record.call_id,)).fetchone()[0]
    assert row == ("completed", "simulated") and n_turns == 2
    logs = local_system.settings.log_dir
    deadline = time.time() + 10
    while record.call_id not in (logs / "voice_ai_agent_audit.log").read_text():
        assert time.time() < deadline, "CALL_END never reached the audit log"
        time.sleep(0.5)
    audit = [ln for ln in (logs / "voice_ai_agent_audit.log").read_text().splitlines()
             if record.call_id in ln]
    assert any("CALL_START" in ln for ln in audit) and any("CALL_END" in ln for ln in audit)
    perf = (logs / "voice_ai_agent_performance.log").read_text()
    assert sum("LATENCY:" in ln and record.call_id in ln for ln in perf.splitlines()) == 2

    status, body = http_get(f"{base}/health")
    assert status == 200 and json.loads(body) == {"status": "healthy"}
    detailed = json.loads(http_get(f"{internal}/health/detailed")[1])
    assert set(detailed["components"]) >= {"ray", "stt_pool", "llm_pool", "tts_pool",
                                            "call_pool"}


def test_pool_worker_killed_during_a_call_is_restarted_and_the_call_completes(
        local_system) -> None:
    settings = local_system.settings
    dispatcher = local_system.handles.dispatcher
    scenario = load_scenario(SCENARIO)
    spec = CallSpec(call_id=uuid.uuid4().hex[:16], scenario=scenario)
    started = ray.get(dispatcher.start_call.remote(spec))
    assert started.decision is Decision.ACCEPTED

    stt = ray.get_actor(worker_name("stt", settings.stt_provider, 0),
                        namespace=settings.ray_namespace)
    pid_before = ray.get(stt.info.remote())["pid"]
    time.sleep(1.0)  # the call is running: greeting being played
    ray.kill(stt, no_restart=False)  # crash it; Ray restarts it under the same name

    record = ray.get(dispatcher.wait_call.remote(started.call_id), timeout=240)
    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert {"appointment", "tuesday"} <= _words(record.turns[0].user_text)
    assert ray.get(stt.info.remote())["pid"] != pid_before
