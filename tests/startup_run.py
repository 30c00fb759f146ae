"""``voice-ai run --calls 1 --exit`` as a user runs it (its own Ray), with all three cloud
providers pointed at the simulators (hosted here, at the ``zero`` profile) and every other
setting at its default; run as ``python -m tests.startup_run --out FILE`` in the background of
the test session (``tests/background.py``), asserted on by ``tests/test_startup.py``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.scenario_process import main
from voice_ai.simulators import ProviderSimulators

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 420.0


def run(out: dict[str, Any], root: Path) -> None:
    sims = ProviderSimulators("zero")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(sims.start(), loop).result(30)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        env.update({k.upper(): str(v) for k, v in sims.settings_overrides().items()})
        env.update(HTTP_PORT=str(free_port()), INTERNAL_HTTP_PORT=str(free_port()),
                   DATA_DIR=str(root / "data"), LOG_DIR=str(root / "logs"),
                   DB_PATH=str(root / "data" / "voice_ai.db"),
                   RECORDINGS_DIR=str(root / "data" / "recordings"),
                   BACKUP_DIR=str(root / "backups"))
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "deployments.cli", "run", "--calls", "1", "--exit",
             "--scenario", str(ROOT / "scenarios" / "opening_hours.yaml")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        out["elapsed_s"] = round(time.monotonic() - started, 1)
        out["returncode"] = done.returncode
        out["output"] = (done.stdout + done.stderr)[-8000:]
    finally:
        asyncio.run_coroutine_threadsafe(sims.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
