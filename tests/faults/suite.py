"""The fault suite (issue #14): kill every system actor in turn under live calls, and prove no
call vanishes and no record is lost.

Run: ``.venv/bin/python -m tests.faults.suite [--out FILE] [--only NAME...]``; ``make
test-faults`` runs it through ``tests/faults/test_fault_suite.py``. It starts its own Ray (2
CPUs, default resource requests) with the three cloud providers pointed at the simulators at
the ``zero`` profile, in its own namespace, its database on a small tmpfs it mounts (for the
full-disk fault; without permission to mount, that row is skipped and says why).

Calls arrive the way production calls do: signed LiveKit webhooks to the public face (rooms
answered by the simulated caller, ``LIVEKIT_URL=sim://``). A driver keeps 4 calls in progress
the whole time. For each fault it records the calls in progress at that moment, injects the
fault, and measures the seconds until a new call is admitted again (a probe webhook) and until
/metrics shows its series again with a poll made after the fault. At the end, after the last
calls ended and the spool drained, every admitted call must have its record in the store:
completed, or failed with an end reason and an error text. "vanished" counts calls with no
record anywhere (store or spool), "lost" calls whose record never reached the store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ray  # noqa: E402

from actors.names import BREAKER_REGISTRY, CALL_ACTOR_PREFIX, DISPATCHER, TELEMETRY  # noqa: E402
from actors.store_writer import WRITER_NAME  # noqa: E402
from deployments.internal_face import internal_url  # noqa: E402
from deployments.local import LocalSystem  # noqa: E402
from tests.fakes.livekit_server import sign_webhook, webhook_json  # noqa: E402
from voice_ai.config import Settings  # noqa: E402
from voice_ai.simulators import ProviderSimulators  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "tests" / "data" / "fault_call.yaml"
NAMESPACE = "voice_ai_faults"
IN_PROGRESS = 4  # calls the driver keeps going
LOCK_S = 15.0  # the store locked this long under load
FULL_S = 8.0  # the store's disk full this long
SECRET = "secret-for-tests-only-0123456789"
POOL_WORKER = "tts-piper-0"  # every call uses it: the simulated caller speaks with Piper
SERIES = ("voice_ai_active_calls", "voice_ai_pool_workers",
          'voice_ai_component_healthy{component="dispatcher"} 1.0',
          'voice_ai_component_healthy{component="store_writer"} 1.0')


@dataclass
class Row:
    fault: str
    how: str
    in_progress: list[str]
    restart_s: float | None = None  # the killed actor answers again (a new process)
    admit_s: float | None = None
    metrics_s: float | None = None
    recover_s: float | None = None
    probes: list[str] = field(default_factory=list)
    vanished: int = 0
    lost: int = 0
    unexplained: list[str] = field(default_factory=list)  # records without a reason
    skipped: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. the dispatcher's recovery


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(method: str, url: str, body: str | None = None,
          headers: dict[str, str] | None = None, timeout: float = 15.0) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:  # refused, reset, timed out: the face itself is down
        return 0, f"{type(e).__name__}"


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.public = f"http://127.0.0.1:{settings.http_port}"
        self.internal = internal_url(settings)
        self.accepted: dict[str, float] = {}  # call id -> when admitted
        self.statuses: list[int] = []  # every webhook answer
        self.active: set[str] = set()  # the dispatcher's live calls, as last seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._driver = threading.Thread(target=self._drive, daemon=True)

    # --- calls --------------------------------------------------------------------------
    def webhook(self) -> str | None:
        room = f"call-_+1555010{uuid.uuid4().int % 10_000:04d}_{uuid.uuid4().hex[:4]}"
        body = webhook_json("participant_joined", room, "sip_caller",
                            phone=f"+1555010{uuid.uuid4().int % 10_000:04d}")
        status, text = _http("POST", f"{self.public}/livekit/webhook", body,
                             {"Authorization": sign_webhook(body, api_secret=SECRET)})
        with self._lock:
            self.statuses.append(status)
        if status == 200:
            reply = json.loads(text)
            if reply.get("status") == "accepted":
                with self._lock:
                    self.accepted[reply["call_id"]] = time.time()
                return str(reply["call_id"])
        return None

    def refresh_active(self) -> bool:
        try:
            d = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
            ids = ray.get(d.active_call_ids.remote(), timeout=2)
        except Exception:
            return False
        with self._lock:
            self.active = set(ids)
        return True

    def _drive(self) -> None:
        while not self._stop.is_set():
            if self.refresh_active() and len(self.active) < IN_PROGRESS:
                if self.webhook() is not None:
                    continue
                # refused (busy, or 503 through a restart): not a tight loop of webhooks
            self._stop.wait(0.2)

    def start(self) -> None:
        self._driver.start()

    def stop(self) -> None:
        self._stop.set()
        self._driver.join(timeout=30)

    # --- measurements ---------------------------------------------------------------------
    def probe_admission(self, since: float, row: Row, timeout_s: float = 60.0) -> float | None:
        while time.monotonic() - since < timeout_s:
            call_id = self.webhook()
            if call_id is not None:
                row.probes.append(call_id)
                return round(time.monotonic() - since, 2)
            time.sleep(0.25)
        return None

    def metrics_back(self, since: float, wall_since: float,
                     timeout_s: float = 60.0) -> float | None:
        """Seconds until /metrics answers with its series and a poll made after the fault."""
        while time.monotonic() - since < timeout_s:
            status, text = _http("GET", f"{self.internal}/metrics", timeout=5)
            if status == 200 and all(s in text for s in SERIES):
                polled = [ln for ln in text.splitlines() if ln.startswith(
                    "voice_ai_telemetry_last_poll_timestamp_seconds ")]
                if polled and float(polled[0].split()[1]) > wall_since:
                    return round(time.monotonic() - since, 2)
            time.sleep(0.25)
        return None

    def snapshot(self) -> list[str]:
        self.refresh_active()
        with self._lock:
            return sorted(self.active)


def _gcs(handle: Any) -> dict[str, Any]:
    from ray._private.state import actors  # the GCS actor table; needs no dashboard

    entry: dict[str, Any] = actors(handle._actor_id.hex())
    return entry


def _alive_pid(handle: Any, timeout_s: float = 60.0) -> int:
    """The pid of the actor's live process (it may still be restarting from a fault before)."""
    deadline = time.monotonic() + timeout_s
    while True:
        entry = _gcs(handle)
        pid = int(entry.get("Pid") or 0)
        if entry.get("State") == "ALIVE" and pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                return pid
        if time.monotonic() > deadline:
            raise RuntimeError(f"actor {entry.get('Name')} is not alive: {entry.get('State')}")
        time.sleep(0.1)


def _named(name: str, namespace: str = NAMESPACE) -> Any:
    return ray.get_actor(name, namespace=namespace)


def _busy_call_actor() -> Any:
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == NAMESPACE and entry["name"].startswith(CALL_ACTOR_PREFIX):
            try:  # listed, then retired (an idle spare) before the lookup: not this one
                handle = _named(entry["name"])
                if ray.get(handle.info.remote(), timeout=2).phase.value == "busy":
                    return handle
            except Exception:
                continue
    raise RuntimeError("no call actor in a call")


def _serve_replica() -> Any:
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == "serve" and "SERVE_REPLICA" in entry["name"] \
                and NAMESPACE in entry["name"]:
            return ray.get_actor(entry["name"], namespace="serve")
    raise RuntimeError("no Serve replica found")


def _kill(handle: Any, how: str) -> None:
    if how == "ray.kill":
        ray.kill(handle, no_restart=False)
    else:
        os.kill(_alive_pid(handle), signal.SIGKILL)


def _time_restart(handle: Any, old_pid: int, since: float, row: Row,
                  timeout_s: float = 60.0) -> None:
    """Seconds until Ray has the actor ALIVE again in a new process."""
    while time.monotonic() - since < timeout_s:
        entry = _gcs(handle)
        if entry.get("State") == "ALIVE" and int(entry.get("Pid") or 0) not in (0, old_pid):
            row.restart_s = round(time.monotonic() - since, 2)
            return
        time.sleep(0.1)


KILLS: dict[str, Callable[[], Any]] = {
    "dispatcher": lambda: _named(DISPATCHER),
    "telemetry hub": lambda: _named(TELEMETRY),
    "store writer": lambda: _named(WRITER_NAME),
    "breaker registry": lambda: _named(BREAKER_REGISTRY),
    "pool worker": lambda: _named(POOL_WORKER),
    "Serve replica": _serve_replica,
    "call actor": _busy_call_actor,
}


def kill_fault(h: Harness, name: str, how: str) -> Row:
    handle = KILLS[name]()
    old_pid = _alive_pid(handle)
    row = Row(name, how, h.snapshot())
    since, wall = time.monotonic(), time.time()
    _kill(handle, how)
    restart = threading.Thread(target=_time_restart, args=(handle, old_pid, since, row),
                               daemon=True)
    if name not in ("call actor", "Serve replica"):  # those are replaced, not restarted
        restart.start()
    row.admit_s = h.probe_admission(since, row)
    row.metrics_s = h.metrics_back(since, wall)
    if restart.is_alive():
        restart.join(timeout=30)  # the next fault starts from a whole system
    if name == "dispatcher":
        with contextlib.suppress(Exception):
            status = ray.get(_named(DISPATCHER).status.remote(), timeout=5)
            row.detail["recovery"] = status["recovery"]
    if row.admit_s is not None and row.metrics_s is not None:
        row.recover_s = max(row.admit_s, row.metrics_s)
    return row


def _stored(db: Path, ids: list[str]) -> dict[str, tuple[str, str, str]]:
    if not ids:
        return {}
    with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True,
                                            timeout=30)) as conn:
        rows = conn.execute(
            f"SELECT call_id, outcome, end_reason, error FROM calls WHERE call_id IN "
            f"({','.join('?' * len(ids))})", ids).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def lock_fault(h: Harness) -> Row:
    """Hold the database's write lock for LOCK_S (as a long VACUUM would) under load."""
    row = Row("store locked 15 s", "BEGIN EXCLUSIVE", h.snapshot())
    conn = sqlite3.connect(h.settings.db_path, isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    since, wall = time.monotonic(), time.time()
    row.admit_s = h.probe_admission(since, row)  # admission does not wait on the store
    time.sleep(max(0.0, LOCK_S - (time.monotonic() - since)))
    during = [c for c, at in h.accepted.items() if at >= wall] + row.in_progress
    conn.execute("COMMIT")
    conn.close()
    released = time.monotonic()
    row.metrics_s = h.metrics_back(since, wall)
    row.recover_s = _records_home(h, during, released)
    return row


def _records_home(h: Harness, ids: list[str], since: float,
                  timeout_s: float = 60.0) -> float | None:
    """Seconds until every call of ``ids`` that ended has its record in the store."""
    while time.monotonic() - since < timeout_s:
        h.refresh_active()
        ended = [c for c in ids if c not in h.active]
        if len(_stored(h.settings.db_path, ended)) == len(ended):
            return round(time.monotonic() - since, 2)
        time.sleep(0.25)
    return None


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int = 16) -> Iterator[str]:
    """A tmpfs for the database; yields "" when mounted, else the reason it is not."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                           str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        yield f"cannot mount a tmpfs here ({(done.stderr or done.stdout).strip()[:120]})"
        return
    try:
        yield ""
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def full_fault(h: Harness, mounted: str) -> Row:
    row = Row("disk full", "fill the store's tmpfs", h.snapshot())
    if mounted:
        row.skipped = mounted
        return row
    filler = h.settings.db_path.parent / "filler"
    since, wall = time.monotonic(), time.time()
    with filler.open("wb") as f:
        with contextlib.suppress(OSError):  # ENOSPC: the disk is full
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
    row.admit_s = h.probe_admission(since, row)
    time.sleep(max(0.0, FULL_S - (time.monotonic() - since)))
    during = [c for c, at in h.accepted.items() if at >= wall] + row.in_progress
    filler.unlink()
    freed = time.monotonic()
    row.metrics_s = h.metrics_back(since, wall)
    row.recover_s = _records_home(h, during, freed)  # the spool replays once space is back
    return row


def inject(h: Harness, name: str, how: str, mounted: str) -> Row:
    """One fault; a fault that cannot be injected is a row saying why, not the end of the run."""
    try:
        if name == "store locked 15 s":
            return lock_fault(h)
        if name == "disk full":
            return full_fault(h, mounted)
        return kill_fault(h, name, how)
    except Exception as e:
        row = Row(name, how, [])
        row.skipped = f"not injected: {type(e).__name__}: {e}"
        return row


def _call_actor_count() -> int:
    return sum(1 for e in ray.util.list_named_actors(all_namespaces=True)
               if e["namespace"] == NAMESPACE and e["name"].startswith(CALL_ACTOR_PREFIX))


def settle(h: Harness, rows: list[Row], timeout_s: float = 120.0) -> dict[str, Any]:
    """Stop new calls, wait for the rest to end and the spool to drain, then judge each row."""
    h.stop()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if h.refresh_active() and not h.active and _spool_count(h.settings) == 0:
            break
        time.sleep(0.5)
    ids = sorted(set(h.accepted) | {c for r in rows for c in (*r.in_progress, *r.probes)})
    stored = _stored(h.settings.db_path, ids)
    spooled = _spooled_ids(h.settings)
    for row in rows:
        calls = set(row.in_progress) | set(row.probes)
        row.vanished = sum(1 for c in calls if c not in stored and c not in spooled)
        row.lost = sum(1 for c in calls if c not in stored)
        row.unexplained = sorted(c for c in calls if c in stored and stored[c][0] == "failed"
                                 and not (stored[c][1] and stored[c][2]))
    outcomes: dict[str, int] = {}
    for outcome, reason, _error in stored.values():
        outcomes[f"{outcome}/{reason}"] = outcomes.get(f"{outcome}/{reason}", 0) + 1
    status, text = _http("GET", f"{h.internal}/metrics", timeout=5)
    active = [ln for ln in text.splitlines() if ln.startswith("voice_ai_active_calls ")]
    return {
        "admitted": len(ids), "stored": len(stored), "never_stored": sorted(set(ids) - set(stored)),
        "outcomes": outcomes,
        "failed": {c: f"{reason}: {error}" for c, (outcome, reason, error) in stored.items()
                   if outcome == "failed"}, "http_statuses": sorted(set(h.statuses)),
        "http_500": h.statuses.count(500), "metrics_status": status,
        "active_calls_gauge": float(active[0].split()[1]) if active else None,
        "spool_left": _spool_count(h.settings),
    }


def _spool_files(settings: Settings) -> list[Path]:
    directory = settings.spool_dir or settings.data_dir / "spool"
    return sorted(directory.glob("records-*.jsonl")) if directory.is_dir() else []


def _spool_count(settings: Settings) -> int:
    return sum(len([ln for ln in p.read_text().splitlines() if ln]) for p in _spool_files(settings))


def _spooled_ids(settings: Settings) -> set[str]:
    return {json.loads(ln)["call_id"] for p in _spool_files(settings)
            for ln in p.read_text().splitlines() if ln}


def _settings(root: Path, db_dir: Path, sims: ProviderSimulators) -> Settings:
    return Settings(
        http_port=_free_port(), http_host="127.0.0.1", internal_http_port=_free_port(),
        data_dir=root / "data", log_dir=root / "logs", db_path=db_dir / "voice_ai.db",
        recordings_dir=root / "data" / "recordings", backup_dir=root / "backups",
        spool_dir=root / "spool", ray_namespace=NAMESPACE,
        # 4 calls in progress plus the probes; the limit keeps call actors (0.05 CPU each) from
        # taking the CPU a killed pool worker (0.5) needs to come back on 2 cores
        max_concurrent_calls=6, warm_call_actors=2,
        livekit_url=f"sim://{SCENARIO}", livekit_api_key="devkey", livekit_api_secret=SECRET,
        greeting="Hello, this is Joe.", **sims.settings_overrides(),
        # a call gone silent is ended (and recorded) after 20 s, not 60: the suite waits for
        # every call to end before it judges
        call_silence_timeout_s=20.0,
    )


class _SimulatorThread:
    """The simulators on their own event loop, beside the synchronous driver."""

    def __init__(self) -> None:
        self.sims = ProviderSimulators("zero")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ProviderSimulators:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sims.start(), self._loop).result(30)
        return self.sims

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sims.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)


PLAN: list[tuple[str, str]] = [
    (name, how) for name in KILLS for how in ("ray.kill", "SIGKILL")
] + [("store locked 15 s", ""), ("disk full", "")]

QUICK: list[tuple[str, str]] = [  # what `make test` runs (budget ~150 s with the start-up)
    ("dispatcher", "SIGKILL"), ("store writer", "SIGKILL"), ("breaker registry", "ray.kill"),
    ("call actor", "SIGKILL"),
]
"""The actors a live call and its record depend on, each killed one way. ``make test-faults``
runs the whole PLAN: both ways for every actor, the telemetry hub, the pool worker, the Serve
replica, the store locked 15 s and its disk full."""


def run(out: dict[str, Any], root: Path, only: list[str], plan: list[tuple[str, str]]) -> None:
    t0 = time.monotonic()
    out["plan"] = [list(step) for step in plan if not only or step[0] in only]
    with small_disk(root / "db") as mounted, _SimulatorThread() as sims:
        settings = _settings(root, root / "db", sims)
        out["disk"] = mounted or "tmpfs 16 MiB"
        from rich.console import Console

        with LocalSystem(settings, num_cpus=2, console=Console(stderr=True)):
            h = Harness(settings)
            out["startup_s"] = round(time.monotonic() - t0, 1)
            h.start()
            rows: list[Row] = []
            try:
                for name, how in plan:
                    if only and name not in only:
                        continue
                    while len(h.snapshot()) < IN_PROGRESS // 2:  # faults hit live calls
                        time.sleep(0.2)
                    rows.append(inject(h, name, how, mounted))
                    print(f"{name} ({how}): {asdict(rows[-1])}", file=sys.stderr, flush=True)
                out["final"] = settle(h, rows)
                out["call_actors_left"] = _call_actor_count()
            finally:
                h.stop()  # no thread may touch Ray once the system is shut down
                out["rows"] = [asdict(r) for r in rows]
    out["total_s"] = round(time.monotonic() - t0, 1)


def table(result: dict[str, Any]) -> str:
    lines = ["| fault | how | calls in progress | calls vanished | records lost | "
             "actor back after (s) | new call admitted after (s) | /metrics back after (s) | "
             "recovered after (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result.get("rows", []):
        if r["skipped"]:
            lines.append(f"| {r['fault']} | skipped: {r['skipped']} | | | | | | | |")
            continue
        lines.append(f"| {r['fault']} | {r['how']} | {len(r['in_progress'])} | {r['vanished']} "
                     f"| {r['lost']} | {r['restart_s'] or '-'} | {r['admit_s']} | {r['metrics_s']} "
                     f"| {r['recover_s']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    parser.add_argument("--only", nargs="*", default=[], help="only these faults (names)")
    parser.add_argument("--quick", action="store_true",
                        help="the rows `make test` runs (QUICK), not the whole PLAN")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="voice-ai-faults-") as tmp:
        try:
            run(out, Path(tmp), args.only, QUICK if args.quick else PLAN)
        except Exception as e:
            import traceback

            out["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()[-2000:]}"
    text = json.dumps(out, indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(text)
    print(table(out))
    sys.exit(1 if "error" in out else 0)


if __name__ == "__main__":
    main()
