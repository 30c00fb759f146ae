"""The Ray cluster `voice-ai run` starts refuses a client without its token (issue #15).

`voice-ai run` runs for real in a subprocess with its own HOME, so the token Ray generates for
it lands in a directory of this test; the clients knock as soon as it prints its cluster's
address (while its pools are still loading) and the run is killed after.
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
            # printed as soon as Ray is up (its token written): the clients knock while the
            # pools and the simulated call are still under way
            if match := re.search(r"ray cluster at (\S+) \(RAY_AUTH_MODE=(\w*)\)", line):
                address = match.group(1)
                assert match.group(2) == "token", line
                break
            assert time.monotonic() < deadline, "voice-ai run did not start in time"
        assert address, "".join(seen[-40:])
        yield address, home
    finally:
        # Killed, not stopped: a graceful Serve shutdown costs ~40 s and is not what this
        # test is about. Ray's daemons share the driver's fate (PR_SET_PDEATHSIG) and its
        # process group; the process group goes as a whole.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        shutil.rmtree(raytmp, ignore_errors=True)


def _join_all(address: str, cwd: Path,
              envs: list[dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    """The clients try to join at once (each pays Python's and Ray's imports, ~10 s)."""
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, address], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for env in envs]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=90)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        except subprocess.TimeoutExpired:  # hung at the door: not let in either
            proc.kill()
            out, _ = proc.communicate()
            results.append(subprocess.CompletedProcess(proc.args, -9, out or "", "timed out"))
    return results


def test_the_cluster_voice_ai_run_starts_refuses_clients_without_its_token(
        voice_ai_run: tuple[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    address, home = voice_ai_run
    token_file = home / ".ray" / "auth_token"
    assert token_file.is_file(), "Ray made no token for the cluster"
    stranger = tmp_path / "stranger"
    stranger.mkdir()

    no_token, wrong, right = _join_all(address, tmp_path, [
        _env(stranger),
        _env(stranger, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="not-the-token-0123456789abcdef"),
        _env(home, RAY_AUTH_MODE="token"),
    ])
    for refused in (no_token, wrong):
        assert "JOINED" not in refused.stdout, refused.stdout
        assert refused.returncode != 0
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
