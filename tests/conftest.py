"""Shared fixtures. Ray tests share ONE cluster per session (``ray_session``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import background
from tests.fixed_day import AGENT_TODAY

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that read a background run go after the others, so the run overlaps them; the
    quiet ones go last, when the runs are over (``tests/background.py``)."""
    def place(item: pytest.Item) -> int:
        if background.is_quiet(item.path):
            return 2
        return 1 if background.users(item.path) else 0

    items.sort(key=place)  # stable: order kept within each group


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    background.start(sorted({n for item in session.items for n in background.users(item.path)}))


def pytest_sessionfinish() -> None:
    background.kill_running()


@pytest.fixture(scope="module", autouse=True)  # before the module's own fixtures start systems
def _quiet_machine(request: pytest.FixtureRequest) -> None:
    """A quiet module (``background.QUIET``) starts only when no background run is going."""
    if background.is_quiet(request.path):
        background.wait_idle()


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for the whole test session: 2 CPUs, no dashboard."""
    import ray

    from actors.worker_setup import RUNTIME_ENV

    if not ray.is_initialized():
        ray.init(
            address="local",  # always a fresh local cluster, never one started elsewhere
            num_cpus=2,
            include_dashboard=False,
            namespace="voice_ai_tests",
            runtime_env=RUNTIME_ENV,
            log_to_driver=False,
        )
    yield
    ray.shutdown()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def system_settings(tmp_path_factory: pytest.TempPathFactory):
    """Settings of the shared end-to-end system: local models, temp paths, a free port."""
    from voice_ai.config import Settings

    root = tmp_path_factory.mktemp("system")
    return Settings(
        http_port=free_port(),
        http_host="127.0.0.1",
        data_dir=root / "data",
        log_dir=root / "logs",
        db_path=root / "data" / "voice_ai.db",
        recordings_dir=root / "data" / "recordings",
        backup_dir=root / "backups",
        warm_call_actors=1,
        max_concurrent_calls=20,
        # webhook-dispatched rooms are answered by the simulated caller (no LiveKit server here)
        livekit_url=f"sim://{SCENARIOS / 'opening_hours.yaml'}",
        livekit_api_key="devkey",
        livekit_api_secret="secret-for-tests-only-0123456789",
        calls_api_token="calls-token-for-tests-only",
        outbound_allowed_prefixes="+1555",  # the tests' fictional numbers
        # the internal face (/metrics, /health/detailed): http://127.0.0.1:<internal_http_port>
        internal_http_port=free_port(),
        webrtc_ice_timeout_s=2.0,  # an abandoned /talk offer frees its slot quickly
        agent_today=AGENT_TODAY,
    )


@pytest.fixture(scope="session")
def local_system(ray_session: None, system_settings):
    """The whole system (pools, dispatcher, telemetry, Serve app) on the shared Ray, once."""
    from deployments.local import LocalSystem

    system = LocalSystem(system_settings, own_ray=False)
    system.start()
    yield system
    system.stop()
