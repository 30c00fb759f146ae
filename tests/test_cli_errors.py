"""Bad input to `voice-ai run` costs one clear line and exit code 2, before Ray starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("STT_PROVIDER", "MAX_CONCURRENT_CALLS", "OPTIMIZATION_LEVEL")}
    return subprocess.run(
        [sys.executable, "-m", "deployments.cli", "run", "--exit", *args],
        # a Ray started by this command would put its session under RAY_TMPDIR: that tells it
        # apart from the test session's own Ray (whose helpers start and stop meanwhile)
        # (the receptionist's profile is named: the command runs outside the checkout)
        cwd=tmp_path, env={**clean, "PYTHONPATH": str(ROOT),
                           "AGENT_PROFILE_PATH": str(ROOT / "agent.yaml"),
                           "RAY_TMPDIR": str(tmp_path / "raytmp"), **env},
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("--scenario", "bad.yaml"), {}, "scenario file bad.yaml: turns.0.say: Field required"),
        (("--scenario", "missing.yaml"), {}, "scenario file not found: missing.yaml"),
        ((), {"STT_PROVIDER": "watson"}, "STT_PROVIDER='watson' is invalid"),
        ((), {"MAX_CONCURRENT_CALLS": "lots"}, "MAX_CONCURRENT_CALLS='lots' is invalid"),
        ((), {"OPTIMIZATION_LEVEL": "turbo"}, "OPTIMIZATION_LEVEL='turbo' is invalid"),
    ],
    ids=["invalid-scenario", "missing-scenario", "unknown-provider", "bad-knob", "bad-level"],
)
def test_bad_input_one_line_exit_2_no_ray(tmp_path: Path, args: tuple[str, ...],
                                          env: dict[str, str], expected: str) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\nturns:\n  - says: hi\n")
    proc = _run(tmp_path, *args, **env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "raytmp").exists()  # no Ray was started
