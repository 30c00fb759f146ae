"""Cloud providers through the real livekit plugins against the loopback simulators, behind the
cluster-wide breakers, with the local models as fallbacks — all through Ray.

A second system runs beside the shared one, in its own namespace (``voice_ai_cloud``) and Serve
route prefix (``/cloud``), on the same test Ray cluster.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
import ray

from tests.conftest import SCENARIOS
from voice_ai.config import Settings
from voice_ai.pipeline.scenario import load_scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallOutcome, CallRecord
from voice_ai.simulators import Fault, ProviderSimulators

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]

MIN_REQUESTS = 2
RECOVERY_S = 4.0  # a probe comes at most once per 4 s: the failing call sees the open state


class SimulatorThread:
    """The simulators on their own event loop, so sync tests can drive them."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.sims = ProviderSimulators("zero")
        self.run(self.sims.start())

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def fault(self, provider: str, fault: Fault) -> None:
        self.run(self.sims.set_fault(provider, fault))

    def close(self) -> None:
        self.run(self.sims.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def sims() -> Iterator[SimulatorThread]:
    thread = SimulatorThread()
    yield thread
    thread.close()


@pytest.fixture(autouse=True)
def _no_fault_outlives_its_test(sims: SimulatorThread) -> Iterator[None]:
    """A test that fails halfway leaves no provider failing for the tests after it."""
    yield
    for provider in ("deepgram", "openai", "cartesia"):
        sims.fault(provider, Fault.NONE)


@pytest.fixture(scope="module")
def cloud_system(ray_session: None, system_settings: Settings, sims: SimulatorThread,
                 tmp_path_factory: pytest.TempPathFactory):
    """Cloud sessions in the call actors (CLOUD_PLACEMENT=call, the default)."""
    from deployments.local import LocalSystem

    root = tmp_path_factory.mktemp("cloud")
    settings = Settings.model_validate({
        **system_settings.model_dump(),
        **sims.sims.settings_overrides(),
        "ray_namespace": "voice_ai_cloud",
        # its own internal face on a port the OS picks (the shared system holds the session's)
        "internal_http_port": 0,
        "data_dir": root, "log_dir": root / "logs", "db_path": root / "voice_ai.db",
        "recordings_dir": root / "recordings",
        "breaker_min_requests": MIN_REQUESTS, "breaker_window_s": 120.0,
        "breaker_recovery_timeout_s": RECOVERY_S, "provider_timeout_s": 3.0,
        "stt_stall_timeout_s": 1.5,
        "pool_actor_num_cpus": 0.0, "call_actor_num_cpus": 0.0,
        # one call per call actor: a call opens its own provider connections, so a fault meets
        # them (a reused actor keeps Cartesia's WebSocket from the call before, which a fault
        # set later does not reach; a socket failing mid-reply is tests/test_stages.py's)
        "call_actor_max_calls": 1,
    })  # validated, so keys become SecretStr like from the environment
    system = LocalSystem(settings, own_ray=False, route_prefix="/cloud")
    system.start()
    yield system
    system.stop()


def _call(system, scenario: str) -> CallRecord:
    (record,) = _calls(system, scenario, 1)
    return record


def _calls(system, scenario: str, n: int) -> list[CallRecord]:
    """``n`` calls of ``scenario`` at once, each completed."""
    specs = [CallSpec(call_id=uuid.uuid4().hex[:16],
                      scenario=load_scenario(SCENARIOS / scenario), record_audio=False)
             for _ in range(n)]
    records = ray.get([system.handles.dispatcher.run_simulated.remote(s) for s in specs],
                      timeout=240)
    for record in records:
        assert isinstance(record, CallRecord), record
        if record.outcome is not CallOutcome.COMPLETED:  # shown with the failure: what it did
            print(f"the system's log, last lines:\n{_log_tail(system)}")
        assert record.outcome is CallOutcome.COMPLETED, record.error  # no turn unanswered
    return list(records)


def _log_tail(system, lines: int = 80) -> str:
    from voice_ai.observability.logs import LOG_FILES

    time.sleep(1.0)  # lines reach the file in batches from the call actors
    path = system.settings.log_dir / LOG_FILES["main"]
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def _breakers(system) -> dict[str, dict[str, Any]]:
    """The breakers' component of /health/detailed. The page is read whatever its status: a
    503 says another component (say a pool worker slow to answer its 2 s probe on a busy
    machine) is unhealthy, and the breakers' part of the page holds all the same."""
    from deployments.internal_face import internal_url

    url = f"{internal_url(system.settings)}/health/detailed"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        if e.code != 503:
            raise
        body = e.read()
    components: dict[str, Any] = json.loads(body)["components"]
    unhealthy = {name: c for name, c in components.items() if c["status"] == "unhealthy"}
    if unhealthy:  # shown with the test's output if it fails
        print(f"/health/detailed: unhealthy {unhealthy}")
    return components["breakers"]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_healthy_then_failing_then_recovered_providers(cloud_system, sims) -> None:
    sims.sims.deepgram.script("I would like to know your opening hours.")
    healthy = _call(cloud_system, "opening_hours.yaml")
    turn = healthy.turns[0]
    assert (turn.stt_provider, turn.llm_provider, turn.tts_provider) == (
        "deepgram", "openai", "cartesia")
    # Deepgram's (scripted) words; VAD may split the utterance into more than one request
    assert turn.user_text.startswith("I would like to know your opening hours.")
    assert not turn.fallback_used

    before = sims.sims.request_counts()
    # Deepgram and OpenAI answer 500; Cartesia stops listening and cuts its open sockets (a
    # 500 would only meet new connections: the plugin keeps its WebSocket between replies)
    faults = {"deepgram": Fault.HTTP_500, "openai": Fault.HTTP_500, "cartesia": Fault.REFUSE}
    for provider, fault in faults.items():
        sims.fault(provider, fault)
    failing = _call(cloud_system, "book_appointment.yaml")  # two turns, each falls back
    for t in failing.turns:
        assert (t.stt_provider, t.llm_provider, t.tts_provider) == ("whisper", "local", "piper")
        assert t.fallback_used and t.agent_text
    # the real whisper model heard the synthesized caller, not a script
    assert {"appointment", "tuesday"} <= _words(failing.turns[0].user_text)
    assert {"thank", "very", "much"} <= _words(failing.turns[1].user_text)  # ", goodbye."

    breakers = _breakers(cloud_system)["providers"]
    reached = sims.sims.request_counts()
    for provider in ("deepgram", "openai", "cartesia"):
        transitions = breakers[provider]["transitions"]
        assert transitions.get("open", 0) >= 1, breakers[provider]
        # once open, nothing reaches the provider but half-open probes (one per probe window)
        sent = reached[provider]["requests"] - before[provider]["requests"]
        assert sent <= MIN_REQUESTS + transitions.get("half_open", 0), (provider, sent, breakers)

    for provider in ("deepgram", "openai", "cartesia"):
        sims.fault(provider, Fault.NONE)
    time.sleep(RECOVERY_S + 0.5)
    sims.sims.deepgram.script("Are you open on Friday?")
    recovered = _call(cloud_system, "opening_hours.yaml")
    turn = recovered.turns[0]
    assert (turn.stt_provider, turn.llm_provider, turn.tts_provider) == (
        "deepgram", "openai", "cartesia")
    assert turn.user_text.startswith("Are you open on Friday?")
    states = {p: b["state"] for p, b in _breakers(cloud_system)["providers"].items()}
    assert states == {"deepgram": "closed", "openai": "closed", "cartesia": "closed"}


def test_401_does_not_open_the_breaker_and_needs_a_person(cloud_system, sims) -> None:
    sims.fault("deepgram", Fault.HTTP_401)
    try:  # more calls than the breaker needs to open, at once; each meets the 401 once
        for record in _calls(cloud_system, "opening_hours.yaml", MIN_REQUESTS + 1):
            assert record.turns[0].stt_provider == "whisper"  # the caller still got an answer
    finally:
        sims.fault("deepgram", Fault.NONE)
    breakers = _breakers(cloud_system)
    assert breakers["providers"]["deepgram"]["state"] == "closed"
    assert breakers["needs_attention"] == ["deepgram"]
    # the operator sees why: the recorded error names the status
    assert "HTTP 401" in breakers["providers"]["deepgram"]["last_error"]
    assert breakers["status"] == "degraded"


def test_breakers_on_metrics(cloud_system) -> None:
    from deployments.internal_face import internal_url

    url = f"{internal_url(cloud_system.settings)}/metrics"
    deadline = time.time() + 10
    while True:
        with urllib.request.urlopen(url, timeout=30) as r:
            text = r.read().decode()
        lines = [ln for ln in text.splitlines() if ln.startswith("circuit_breaker")]
        if any('to_state="open"' in ln and not ln.endswith(" 0.0") for ln in lines):
            break
        assert time.time() < deadline, lines
        time.sleep(0.5)
    assert any(ln.startswith('circuit_breaker_state{provider="deepgram"}') for ln in lines)



def _wait_closed(system, provider: str, timeout_s: float) -> dict[str, Any]:
    """The provider's breaker once it is closed (an open one recovers after RECOVERY_S)."""
    deadline = time.monotonic() + timeout_s
    while True:
        breaker: dict[str, Any] = _breakers(system)["providers"][provider]
        if breaker["state"] == "closed":
            return breaker
        assert time.monotonic() < deadline, breaker
        time.sleep(0.25)


def test_outage_under_concurrent_calls_is_bounded_and_every_turn_answered(
        cloud_system, sims) -> None:
    """Deepgram down while several calls run at once, each in its own call actor: no more than
    BREAKER_MIN_REQUESTS streams cluster-wide reach it (plus half-open probes), and every
    caller is answered (by whisper). Then Deepgram returns and the next call uses it."""
    calls = 3
    _wait_closed(cloud_system, "deepgram", RECOVERY_S + 2)  # whatever an earlier test opened
    sims.fault("deepgram", Fault.HTTP_500)
    before = sims.sims.request_counts()["deepgram"]["requests"]
    probes_before = _breakers(cloud_system)["providers"]["deepgram"]["transitions"].get(
        "half_open", 0)
    dispatcher = cloud_system.handles.dispatcher
    try:
        specs = [CallSpec(call_id=uuid.uuid4().hex[:16], record_audio=False,
                          scenario=load_scenario(SCENARIOS / "opening_hours.yaml"))
                 for _ in range(calls)]
        records = ray.get([dispatcher.run_simulated.remote(s) for s in specs], timeout=240)
    finally:
        sims.fault("deepgram", Fault.NONE)
    sent = sims.sims.request_counts()["deepgram"]["requests"] - before
    breaker = _breakers(cloud_system)["providers"]["deepgram"]
    probes = breaker["transitions"].get("half_open", 0) - probes_before
    assert all(isinstance(r, CallRecord) for r in records), records
    assert [r.outcome for r in records] == [CallOutcome.COMPLETED] * calls, \
        [r.error for r in records]  # no caller went unanswered
    turns = [t for r in records for t in r.turns]
    assert len(turns) == calls and all(t.agent_text for t in turns), turns
    assert {t.stt_provider for t in turns} == {"whisper"}  # nothing served by Deepgram
    assert breaker["transitions"].get("open", 0) >= 1, breaker
    assert 1 <= sent <= MIN_REQUESTS + probes, (sent, breaker)

    time.sleep(RECOVERY_S + 0.5)  # the breaker lets a probe through after RECOVERY_S
    sims.sims.deepgram.script("Are you open on Saturday?")
    back = _call(cloud_system, "opening_hours.yaml")
    assert back.turns[0].stt_provider == "deepgram"
