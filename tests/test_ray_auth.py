"""The Ray cluster `voice-ai run` starts refuses a client without its token (issue #15).

`voice-ai run` runs for real in a subprocess (local models, one simulated call, then it keeps
serving) with its own HOME, so the token Ray generates for it lands in a directory of this test.
Then three clients try to join that cluster: one with no token, one with a wrong token (both
must be refused) and one with the token from that HOME (must get in: without this control the
first two could "fail" for any reason).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 420
CLIENT = (
    "import sys, ray\n"
    "ray.init(address=sys.argv[1], log_to_driver=False)\n"
    "print('JOINED', ray.cluster_resources().get('CPU'))\n"
    "ray.shutdown()\n"
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAY_AUTH") and k not in ("RAY_ADDRESS", "HOME")}
    return {**env, "HOME": str(home), "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture
def voice_ai_run(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`voice-ai run --calls 1` serving; yields (GCS address, the HOME holding its token)."""
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"
    # Ray's socket paths must stay under 107 bytes: a short directory of its own
    raytmp = Path(tempfile.mkdtemp(prefix="va-auth-", dir="/tmp"))
    env = _env(home, RAY_TMPDIR=str(raytmp), HTTP_PORT=str(free_port()),
               INTERNAL_HTTP_PORT=str(free_port()), DATA_DIR=str(data), LOG_DIR=str(
                   tmp_path / "logs"), DB_PATH=str(data / "voice_ai.db"),
               RECORDINGS_DIR=str(data / "recordings"), BACKUP_DIR=str(tmp_path / "backups"),
               AGENT_PROFILE_PATH=str(ROOT / "agent.yaml"), WARM_CALL_ACTORS="1",
               COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployments.cli", "run", "--calls", "1",
         "--scenario", str(ROOT / "scenarios" / "opening_hours.yaml")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    assert proc.stdout is not None
    address, seen = "", []
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        for line in proc.stdout:
            seen.append(line)
            if match := re.search(r"ray cluster at (\S+) \(RAY_AUTH_MODE=(\w*)\)", line):
                address = match.group(1)
                assert match.group(2) == "token", line
            if "serving" in line and address:
                break
            assert time.monotonic() < deadline, "voice-ai run did not start in time"
        assert address, "".join(seen[-40:])
        yield address, home
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # LocalSystem shuts its Ray down on the way out
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        shutil.rmtree(raytmp, ignore_errors=True)


def _join(address: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, "-c", CLIENT, address], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as e:  # hung at the door: not let in either
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return subprocess.CompletedProcess(e.cmd, -9, out, "timed out")


def test_the_cluster_voice_ai_run_starts_refuses_clients_without_its_token(
        voice_ai_run: tuple[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    address, home = voice_ai_run
    token_file = home / ".ray" / "auth_token"
    assert token_file.is_file(), "Ray made no token for the cluster"
    stranger = tmp_path / "stranger"
    stranger.mkdir()

    no_token = _join(address, _env(stranger), tmp_path)
    assert "JOINED" not in no_token.stdout, no_token.stdout
    assert no_token.returncode != 0
    wrong = _join(address, _env(stranger, RAY_AUTH_MODE="token",
                                RAY_AUTH_TOKEN="not-the-token-0123456789abcdef"), tmp_path)
    assert "JOINED" not in wrong.stdout, wrong.stdout
    assert wrong.returncode != 0
    right = _join(address, _env(home, RAY_AUTH_MODE="token"), tmp_path)
    assert right.returncode == 0 and "JOINED" in right.stdout, right.stdout + right.stderr
    for refused in (no_token, wrong):
        text = refused.stdout + refused.stderr
        assert re.search(r"(?i)authenticat|token", text), text[-2000:]
    with capsys.disabled():
        for name, result in (("no token", no_token), ("wrong token", wrong),
                             ("the token", right)):
            lines = (result.stdout + result.stderr).strip().splitlines() or [""]
            said = next((ln for ln in lines if re.search(r"(?i)authenticat", ln)), lines[-1])
            print(f"\nclient with {name}: exit {result.returncode}: {said.strip()[:160]}")
