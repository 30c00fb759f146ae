"""The clients at the door of the Ray cluster `voice-ai run` starts: run as ``python -m
tests.ray_auth_run --out FILE`` in the background of the test session (``tests/background.py``),
asserted on by ``tests/test_ray_auth.py`` (which says what and why).

`voice-ai run --calls 1` runs for real with its own HOME, so the token Ray generates for it
lands in a directory of this run; three clients knock as soon as it prints its cluster's
address (while its pools are still loading): one with no token, one with a wrong token and
one with the token from that HOME. Then the run is killed.
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
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.scenario_process import main

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 420
CLIENT = (
    "import sys, ray\n"
    "ray.init(address=sys.argv[1], log_to_driver=False)\n"
    "print('JOINED', ray.cluster_resources().get('CPU'))\n"
    "ray.shutdown()\n"
)
CLIENTS = ("no token", "wrong token", "the token")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAY_AUTH") and k not in ("RAY_ADDRESS", "HOME")}
    return {**env, "HOME": str(home), "PYTHONPATH": str(ROOT), **extra}


def _join_all(address: str, cwd: Path, envs: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The clients try to join at once (each pays Python's and Ray's imports, ~10 s)."""
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, address], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for env in envs]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=90)
            code = proc.returncode
        except subprocess.TimeoutExpired:  # hung at the door: not let in either
            proc.kill()
            out, _ = proc.communicate()
            code, err = -9, "timed out"
        results.append({"returncode": code, "stdout": out or "", "stderr": err[-4000:]})
    return results


def run(out: dict[str, Any], root: Path) -> None:
    home = root / "home"
    home.mkdir()
    data = root / "data"
    # Ray's socket paths must stay under 107 bytes: a short directory of its own
    raytmp = Path(tempfile.mkdtemp(prefix="va-auth-", dir="/tmp"))
    env = _env(home, RAY_TMPDIR=str(raytmp), HTTP_PORT=str(free_port()),
               INTERNAL_HTTP_PORT=str(free_port()), DATA_DIR=str(data), LOG_DIR=str(
                   root / "logs"), DB_PATH=str(data / "voice_ai.db"),
               RECORDINGS_DIR=str(data / "recordings"), BACKUP_DIR=str(root / "backups"),
               AGENT_PROFILE_PATH=str(ROOT / "agent.yaml"), WARM_CALL_ACTORS="1",
               COLUMNS="200")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployments.cli", "run", "--calls", "1",
         "--scenario", str(ROOT / "scenarios" / "opening_hours.yaml")],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        for line in proc.stdout:
            seen.append(line)
            # printed as soon as Ray is up (its token written): the clients knock while the
            # pools and the simulated call are still under way
            if match := re.search(r"ray cluster at (\S+) \(RAY_AUTH_MODE=(\w*)\)", line):
                out["address"], out["auth_mode"] = match.group(1), match.group(2)
                break
            if time.monotonic() > deadline:
                break
        if "address" not in out:
            out["error"] = "voice-ai run printed no cluster address:\n" + "".join(seen[-40:])
            return
        out["token_file"] = (home / ".ray" / "auth_token").is_file()
        stranger = root / "stranger"
        stranger.mkdir()
        results = _join_all(out["address"], root, [
            _env(stranger),
            _env(stranger, RAY_AUTH_MODE="token",
                 RAY_AUTH_TOKEN="not-the-token-0123456789abcdef"),
            _env(home, RAY_AUTH_MODE="token"),
        ])
        out["clients"] = dict(zip(CLIENTS, results, strict=True))
    finally:
        # Killed, not stopped: a graceful Serve shutdown costs ~40 s and is not what this
        # is about. Ray's daemons share the driver's fate (PR_SET_PDEATHSIG) and its
        # process group; the process group goes as a whole.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        shutil.rmtree(raytmp, ignore_errors=True)


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
