"""The local spool: call records the store could not take, kept on this node until it can.

One JSON line per record in ``SPOOL_DIR/records-<node>.jsonl``, appended and fsynced under an
exclusive ``flock`` (several call actors on a node append at once). ``replay`` sends the
records back to the store in order and removes the ones it acknowledged; one replayer at a
time (a second one skips), and appends carry on meanwhile: only the replayed prefix is cut.
Records are idempotent by call id, so a record replayed twice is stored once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voice_ai.records import CallDirection, CallRecord, EndReason, TurnTimings

__all__ = ["RecordSpool", "ReplayResult", "record_from_json", "record_to_json"]


def record_to_json(record: CallRecord) -> str:
    data = dataclasses.asdict(record)
    data["direction"] = record.direction.value
    data["end_reason"] = record.end_reason.value
    return json.dumps(data, separators=(",", ":"))


def record_from_json(line: str) -> CallRecord:
    """The inverse of ``record_to_json``; unknown keys are ignored (a newer writer's fields)."""
    data: dict[str, Any] = json.loads(line)
    names = {f.name for f in dataclasses.fields(CallRecord)}
    turn_names = {f.name for f in dataclasses.fields(TurnTimings)}
    fields = {k: v for k, v in data.items() if k in names}
    fields["direction"] = CallDirection(fields["direction"])
    fields["end_reason"] = EndReason(fields["end_reason"])
    fields["turns"] = tuple(TurnTimings(**{k: v for k, v in t.items() if k in turn_names})
                            for t in fields.get("turns", ()))
    return CallRecord(**fields)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    replayed: int  # acknowledged by the store and removed from the spool
    remaining: int  # still in the spool (the store refused one; try later)
    skipped: bool = False  # another replay was running


class RecordSpool:
    def __init__(self, directory: Path, node: str) -> None:
        if not node or "/" in node:
            raise ValueError(f"spool node name must be a plain name, got {node!r}")
        self.directory = directory
        self.path = directory / f"records-{node}.jsonl"

    def append(self, record: CallRecord) -> int:
        """Append ``record`` durably; return how many records this node's spool holds."""
        self.directory.mkdir(parents=True, exist_ok=True)
        line = record_to_json(record) + "\n"
        with _locked(_lock_path(self.path)):
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            return _count(self.path)

    def pending(self) -> int:
        """Records waiting in every spool file of the directory (all nodes that share it)."""
        return sum(_count(p) for p in self._files())

    def pending_by_node(self) -> dict[str, int]:
        """Records waiting per node (from the file names); 0 for a spool emptied by replay."""
        return {p.stem.removeprefix("records-"): _count(p) for p in self._files()}

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("records-*.jsonl"))

    async def replay(self, write: Callable[[CallRecord], Awaitable[bool]]) -> ReplayResult:
        """Send every spooled record to ``write`` (True: acknowledged). Stops at the first
        refusal. Files of other nodes in the same directory are replayed too."""
        replayed = 0
        try:
            with _locked(self.directory / ".replay.lock", blocking=False):
                for path in self._files():
                    done = await _replay_file(path, write)
                    replayed += done
                    if _count(path) > 0:
                        break
        except BlockingIOError:
            return ReplayResult(0, self.pending(), skipped=True)
        return ReplayResult(replayed, self.pending())


async def _replay_file(path: Path, write: Callable[[CallRecord], Awaitable[bool]]) -> int:
    lines = _read_lines(path)
    done = 0
    for line in lines:  # the lock is not held while the store is asked: appends go on
        try:
            record = record_from_json(line)
        except (ValueError, KeyError, TypeError):
            _keep_unreadable(path, line)
        else:
            if not await write(record):
                break
        done += 1
    if done:
        _cut_prefix(path, done)
    return done


def _read_lines(path: Path) -> list[str]:
    with _locked(_lock_path(path)):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
    return [ln for ln in text.splitlines() if ln.strip()]


def _cut_prefix(path: Path, done: int) -> None:
    """Remove the first ``done`` records; appends only add at the end, so they are ours."""
    with _locked(_lock_path(path)):
        rest = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()][done:]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(ln + "\n" for ln in rest), encoding="utf-8")
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _keep_unreadable(path: Path, line: str) -> None:
    """A line that is not a record (a torn write): moved aside for a person, not lost."""
    with path.with_suffix(".unreadable").open("a", encoding="utf-8") as f:
        f.write(line + "\n")


def _count(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for ln in f if ln.strip())
    except FileNotFoundError:
        return 0


def _lock_path(path: Path) -> Path:
    return path.with_suffix(".lock")


@contextmanager
def _locked(path: Path, *, blocking: bool = True) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
