"""``make runbook-check``: run every command of docs/RUNBOOK.md that works on one machine,
against a live system started the production way (`serve deploy serve_config.yaml`).

Commands are read from the runbook's ```bash blocks, one per line; a line ending in
``# needs a cluster`` acts on machines and is listed, not run. The rest run in order with bash
in a scratch directory that holds the system's ``logs/``, ``data/`` and ``backups/``, with
``localhost:8000`` (the public face) and ``localhost:8001`` (the internal face) pointed at this
run's ports. A command must exit 0 and name no missing file;
a bare ``grep`` (no pipe) may exit 1, which means "no such lines". Prints one line per
command and exits 1 if any failed.

This process owns the Ray cluster (``ray.init`` with the dashboard, which ``serve deploy``
needs) and shuts exactly that cluster down at the end; it never runs ``ray stop``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
CLUSTER_ONLY = "# needs a cluster"
DOC_PORT = 8000
DOC_INTERNAL_PORT = 8001


@dataclass(frozen=True)
class Command:
    line: int
    text: str

    @property
    def runnable(self) -> bool:
        return not self.text.rstrip().endswith(CLUSTER_ONLY)

    @property
    def may_find_nothing(self) -> bool:
        return self.text.startswith("grep ") and "|" not in self.text


def runbook_commands(text: str) -> list[Command]:
    """Each non-empty, non-comment line of every ```bash block."""
    commands, in_bash = [], False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("```"):
            in_bash = line == "```bash"
            continue
        if in_bash and line and not line.startswith("#"):
            commands.append(Command(n, line))
    return commands


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            return bool(r.status == 200)
    except Exception:
        return False


def _wait_healthy(port: int, timeout_s: float = 420.0) -> None:
    deadline = time.time() + timeout_s
    while not _healthy(port):
        if time.time() > deadline:
            raise TimeoutError(f"/health on :{port} not 200 after {timeout_s:.0f}s")
        time.sleep(2.0)


def _prepare_workdir(work: Path, port: int, internal_port: int) -> dict[str, str]:
    """serve_config.yaml (this run's port) and scenarios/ beside the state dirs; the env."""
    config = (ROOT / "serve_config.yaml").read_text()
    config = re.sub(r"(\n\s*port:\s*)\d+", rf"\g<1>{port}", config, count=1)
    (work / "serve_config.yaml").write_text(config)
    shutil.copytree(ROOT / "scenarios", work / "scenarios")
    env = dict(os.environ)
    env.update({
        "DATA_DIR": str(work / "data"), "LOG_DIR": str(work / "logs"),
        "DB_PATH": str(work / "data" / "voice_ai.db"), "BACKUP_DIR": str(work / "backups"),
        "RECORDINGS_DIR": str(work / "data" / "recordings"), "HTTP_PORT": str(port),
        "INTERNAL_HTTP_PORT": str(internal_port),
        "AGENT_PROFILE_PATH": str(ROOT / "agent.yaml"),  # the receptionist's profile
        "WARM_CALL_ACTORS": "1", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
        # a throwaway loopback cluster: no token to hand to the CLI clients (serve, ray status)
        "RAY_AUTH_MODE": "disabled",
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    })
    return env


def run(commands: list[Command], work: Path, env: dict[str, str], port: int,
        internal_port: int) -> int:
    failures = 0
    for c in commands:
        if not c.runnable:
            print(f"SKIP  line {c.line}: {c.text}")
            continue
        cmd = c.text.replace(f"localhost:{DOC_PORT}", f"localhost:{port}").replace(
            f"localhost:{DOC_INTERNAL_PORT}", f"localhost:{internal_port}")
        started = time.perf_counter()
        proc = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True,
                              text=True, timeout=600)
        ok = (proc.returncode == 0 or (proc.returncode == 1 and c.may_find_nothing)) and (
            "No such file" not in proc.stderr)  # a grep | tail pipeline hides a missing log
        took = time.perf_counter() - started
        print(f"{'ok  ' if ok else 'FAIL'}  line {c.line} ({took:.1f}s, exit {proc.returncode})"
              f": {c.text}", flush=True)
        if not ok:
            failures += 1
            print((proc.stdout + proc.stderr)[-1500:], flush=True)
        if ok and "serve deploy" in cmd:
            try:
                _wait_healthy(port)
            except TimeoutError as e:
                failures += 1
                print(f"FAIL  after line {c.line}: {e}", flush=True)
    return failures


def main() -> None:
    import ray

    commands = runbook_commands(RUNBOOK.read_text())
    port, dash, internal_port = _free_port(), _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="voice-ai-runbook-") as tmp:
        work = Path(tmp)
        env = _prepare_workdir(work, port, internal_port)
        os.environ.update({k: v for k, v in env.items() if k != "PATH"})  # Ray workers inherit
        os.chdir(work)
        # address="local": always a new cluster, never one another process started here
        ctx = ray.init(address="local", num_cpus=2, include_dashboard=True,
                       dashboard_host="127.0.0.1", dashboard_port=dash, log_to_driver=False)
        env["RAY_ADDRESS"] = ctx.address_info["gcs_address"]
        env["RAY_DASHBOARD_ADDRESS"] = f"http://127.0.0.1:{dash}"
        try:
            # the system up the production way, one call and one backup so there is something
            # to grep, report and restore; then every command of the runbook in order
            setup = [Command(0, "serve deploy serve_config.yaml"),
                     Command(0, "voice-ai call test"), Command(0, "voice-ai backup")]
            failures = run(setup, work, env, port, internal_port)
            failures += run(commands, work, env, port, internal_port) if not failures else 0
        finally:
            ray.shutdown()
    ran = sum(c.runnable for c in commands)
    print(f"{ran} runbook commands run, {len(commands) - ran} need a cluster, "
          f"{failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
