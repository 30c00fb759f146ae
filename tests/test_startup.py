"""Start-up never waits for ever, and the defaults fit 2 cores (issue #14 item 4).

- An actor the cluster cannot place fails start-up within STARTUP_TIMEOUT_S with one line
  naming the actor and the resource it waits for (on the session's Ray, in a namespace of its
  own, removed afterwards).
- ``voice-ai run --calls 1 --exit`` with all three cloud providers pointed at the simulators and
  every other setting at its default completes on this 2-core machine (its own Ray, as a user
  runs it).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests import background
from voice_ai.config import Settings

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]


def test_an_actor_that_cannot_be_placed_fails_start_up_with_one_line(
        ray_session: None, tmp_path: Path) -> None:
    from actors.system import PlacementError, ensure_system, teardown_system

    settings = Settings(ray_namespace="voice_ai_placement", data_dir=tmp_path / "data",
                        log_dir=tmp_path / "logs", db_path=tmp_path / "data" / "v.db",
                        pool_actor_num_cpus=8.0, startup_timeout_s=3.0)
    started = time.monotonic()
    try:
        with pytest.raises(PlacementError) as failed:
            ensure_system(settings)
    finally:
        teardown_system(settings)
    elapsed = time.monotonic() - started
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("start-up failed: actor ") and "not placed within 3 s" in message
    assert "-0 not placed" in message  # names the first pool worker that waits
    assert "it waits for CPU 8 (cluster 2" in message
    assert "POOL_ACTOR_NUM_CPUS" in message
    assert elapsed < 3.0 + 30.0  # the timeout, plus creating the system's other actors


def test_voice_ai_run_with_three_cloud_providers_completes_on_two_cores() -> None:
    # ``tests/startup_run.py``, run in the background from the session's start
    result = background.result("startup").json_or_error()
    assert "error" not in result, result["error"]
    output = result["output"]
    assert result["returncode"] == 0, output[-4000:]
    assert "pools ready in" in output
    # the call completed and the agent answered; how many turns the caller's one line makes
    # is the STT's business (Deepgram may final a comma pause on its own: two turns)
    assert re.search(r"call 1 \(opening_hours\) completed: [1-9]\d* turns", output), \
        output[-3000:]
    assert result["elapsed_s"] < 420
