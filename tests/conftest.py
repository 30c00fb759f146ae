"""Shared fixtures. Ray tests share ONE cluster per session (``ray_session``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for the whole test session: 2 CPUs, no dashboard."""
    import ray

    from actors.worker_setup import RUNTIME_ENV

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            namespace="voice_ai_tests",
            runtime_env=RUNTIME_ENV,
            log_to_driver=False,
        )
    yield
    ray.shutdown()
