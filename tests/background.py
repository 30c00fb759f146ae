"""Long runs in their own process, started as soon as the session knows it needs them and run
in the background, one after another, while the other tests go on.

Each of these builds its own Ray (a 3-node ``ray.cluster_utils.Cluster``, the benchmark's
system, the fault suite's, ``voice-ai run``'s twice) and mostly waits on calls spoken in real
time: run in line they took 6.5 of the suite's 17.3 minutes on 2 cores, with the machine's CPU
~55 % idle over the suite. The tests that read a run's result are moved to the end of the
session (``conftest.py``), so the runs overlap everything else; a test asks for its run's
result and waits for it if need be.

A run is what the test module used to start itself: ``python -m <module> ... --out FILE``,
its exit status, its output and the JSON it left in FILE. Run alone (``pytest
tests/test_burst.py``), it starts at collection and the test waits for it, as before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["JOBS", "QUIET", "Job", "Run", "is_quiet", "kill_running", "result", "start", "users",
           "wait_idle"]


@dataclass(frozen=True)
class Run:
    """What a background run left behind."""

    returncode: int | None  # None: it ran past its time limit and was killed
    stdout: str
    stderr: str
    out: Path  # the file it was told to write its JSON to (``--out``)

    @property
    def data(self) -> dict[str, Any] | None:
        """The JSON it wrote; None if it wrote none."""
        try:
            value: dict[str, Any] = json.loads(self.out.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return value

    def json_or_error(self) -> dict[str, Any]:
        """The run's JSON, or ``{"error": ...}`` naming why there is none."""
        data = self.data
        if data is not None:
            return data
        how = "ran past its time limit" if self.returncode is None else \
            f"exit {self.returncode}"
        return {"error": f"no JSON ({how}): {self.stderr[-3000:]}"}


@dataclass
class Job:
    name: str
    argv: tuple[str, ...]  # after ``python -m``; ``--out FILE`` is added
    timeout_s: float
    users: tuple[str, ...]  # test files (below tests/) whose tests read its result
    done: threading.Event = field(default_factory=threading.Event)
    run: Run | None = None


def _fault_suite_argv() -> tuple[str, ...]:
    quick = () if os.environ.get("FAULT_SUITE") == "full" else ("--quick",)
    return ("tests.faults.suite", *quick)


# the longest first: it has the most to overlap
JOBS: dict[str, Job] = {job.name: job for job in (
    Job("multinode", ("tests.multinode_scenario",), 540.0,
        ("test_burst.py", "test_multinode.py")),
    Job("autoscaling", ("tests.autoscaling_scenario",), 360.0, ("test_autoscaling.py",)),
    Job("benchmark_smoke", ("benchmarks.load", "--mode", "smoke"), 300.0,
        ("test_benchmark_smoke.py",)),
    Job("fault_suite", _fault_suite_argv(), 900.0, ("faults/test_fault_suite.py",)),
    Job("startup", ("tests.startup_run",), 480.0, ("test_startup.py",)),
    Job("ray_auth", ("tests.ray_auth_run",), 540.0, ("test_ray_auth.py",)),
)}

# test files (below tests/) whose calls must not share the 2 cores with a run (module docstring)
QUIET = ("test_fallback_system.py",)

_lock = threading.Lock()
_started: set[str] = set()
_running: subprocess.Popen[str] | None = None
_stopped = False  # the session is over: start nothing more
_tmp: tempfile.TemporaryDirectory[str] | None = None


def _relative(path: Path) -> str | None:
    try:
        return path.resolve().relative_to(ROOT / "tests").as_posix()
    except ValueError:  # not a test of tests/
        return None


def users(path: Path) -> list[str]:
    """The jobs whose result the tests in ``path`` read."""
    rel = _relative(path)
    return [job.name for job in JOBS.values() if rel in job.users]


def is_quiet(path: Path) -> bool:
    """Whether the tests in ``path`` must run with no background run going."""
    return _relative(path) in QUIET


def start(names: list[str]) -> None:
    """Start these jobs (those not started yet) in one background thread, in ``JOBS`` order."""
    with _lock:
        todo = [JOBS[n] for n in JOBS if n in names and n not in _started]
        _started.update(job.name for job in todo)
    if todo:
        threading.Thread(target=_run_all, args=(todo,), name="background-runs",
                         daemon=True).start()


def result(name: str) -> Run:
    """The run's result, waiting for it (starting it now if nothing did)."""
    job = JOBS[name]
    start([name])
    job.done.wait()
    assert job.run is not None
    return job.run


def wait_idle() -> None:
    """Until every run started in this session has ended (at once if none was started)."""
    with _lock:
        started = [JOBS[n] for n in _started]
    for job in started:
        job.done.wait()


def kill_running() -> None:
    """End of session: a run still going (the session stopped early) is killed with its
    process group, so no Ray of its outlives the tests."""
    global _stopped
    with _lock:
        _stopped = True
        proc = _running
    if proc is not None and proc.poll() is None:
        _kill(proc)


def _run_all(jobs: list[Job]) -> None:
    for job in jobs:
        try:
            job.run = _run(job)
        except Exception as e:  # noqa: BLE001 — the test reports it, not this thread
            job.run = Run(None, "", f"{type(e).__name__}: {e}", Path(os.devnull))
        finally:
            job.done.set()


def _run(job: Job) -> Run:
    global _running, _tmp
    if _tmp is None:
        _tmp = tempfile.TemporaryDirectory(prefix="voice-ai-background-")
    out = Path(_tmp.name) / f"{job.name}.json"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # never the session's Ray
    with _lock:
        if _stopped:
            return Run(None, "", "not run: the test session ended first", out)
        proc = subprocess.Popen([sys.executable, "-m", *job.argv, "--out", str(out)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        _running = proc
    try:
        stdout, stderr = proc.communicate(timeout=job.timeout_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _kill(proc)
        try:  # a process outside its group could still hold the pipes: never wait for ever
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            stdout, stderr = "", "its output pipes stayed open after it was killed"
        code = None
    finally:
        _running = None
    return Run(code, stdout, stderr, out)


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
