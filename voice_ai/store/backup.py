"""Online backups and restore, with SQLite's backup API.

``backup_database`` copies the live database while the writer keeps committing (a WAL reader
does not block the writer), verifies the copy with ``PRAGMA integrity_check``, publishes it as
``voice_ai-YYYYMMDD-HHMMSS.db`` (local time) and as ``latest_backup.db``, then prunes copies
older than the retention. Backup files are in rollback-journal mode (no ``-wal`` beside them),
so the runbook's ``sqlite3 backups/latest_backup.db ".tables"`` and ``cp`` commands work on them.

``restore_database`` checks the candidate first and refuses a bad one before touching the live
database; it keeps a ``pre-restore-*.db`` copy of what it replaces.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from voice_ai.store.call_store import exclusive_store_lock
from voice_ai.store.errors import (
    DatabaseCorruptError,
    DatabaseMissingError,
    SchemaMismatchError,
    StoreError,
)
from voice_ai.store.schema import (
    BUSY_TIMEOUT_MS,
    SCHEMA_VERSION,
    integrity_errors,
    open_readonly,
    schema_problems,
    schema_version,
)

__all__ = [
    "BackupResult",
    "LATEST_NAME",
    "RestoreResult",
    "backup_database",
    "backup_name",
    "prune_backups",
    "restore_database",
    "verify_database",
]

LATEST_NAME = "latest_backup.db"
_NAME_RE = re.compile(r"^voice_ai-(\d{8}-\d{6})\.db$")
_STAMP = "%Y%m%d-%H%M%S"


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    latest: Path
    calls: int
    size_bytes: int
    pruned: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class RestoreResult:
    restored_from: Path
    calls: int
    previous_copy: Path | None


def backup_name(now: datetime) -> str:
    return f"voice_ai-{now.strftime(_STAMP)}.db"


def verify_database(path: Path) -> int:
    """Check ``path`` is an intact call store; return its number of calls or raise."""
    problems = integrity_errors(path)
    if problems:
        raise DatabaseCorruptError(
            f"{path} failed the integrity check: {'; '.join(problems[:3])}"
        )
    conn = open_readonly(path, require_current=False)
    try:
        version = schema_version(conn)
        if not 1 <= version <= SCHEMA_VERSION:
            raise DatabaseCorruptError(
                f"{path} is not a call store database (schema version {version})"
            )
        problems = schema_problems(conn)
        if problems:
            raise SchemaMismatchError(
                f"{path} does not have the call store's schema: {'; '.join(problems[:3])}")
        return int(conn.execute("SELECT count(*) FROM calls").fetchone()[0])
    except sqlite3.DatabaseError as e:
        raise DatabaseCorruptError(f"{path} is not a call store database: {e}") from None
    finally:
        conn.close()


def _copy_online(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` in one backup step: a consistent snapshot."""
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True,
                          timeout=BUSY_TIMEOUT_MS / 1000)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
        # A standalone file: no WAL beside it, so it can be copied, opened or restored as is.
        dst.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.DatabaseError as e:
        raise DatabaseCorruptError(f"cannot back up {source}: {e}") from None
    finally:
        dst.close()
        src.close()


def _publish(tmp: Path, final: Path) -> None:
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def backup_database(
    db_path: Path, backup_dir: Path, *, retention_days: int, now: datetime | None = None
) -> BackupResult:
    """Take, verify and publish one backup; prune the ones older than ``retention_days``."""
    now = now or datetime.now()
    if not db_path.is_file():
        raise DatabaseMissingError(f"database not found: {db_path}")
    backup_dir.mkdir(parents=True, exist_ok=True)
    final = backup_dir / backup_name(now)
    if final.exists():
        raise StoreError(f"backup {final} already exists; try again in a second")
    tmp = final.with_name(final.name + ".partial")
    try:
        _copy_online(db_path, tmp)
        calls = verify_database(tmp)
        _publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    latest = backup_dir / LATEST_NAME
    latest_tmp = latest.with_name(LATEST_NAME + ".partial")
    shutil.copyfile(final, latest_tmp)
    _publish(latest_tmp, latest)
    pruned = prune_backups(backup_dir, retention_days=retention_days, now=now)
    return BackupResult(final, latest, calls, final.stat().st_size, tuple(pruned))


def prune_backups(backup_dir: Path, *, retention_days: int, now: datetime) -> list[Path]:
    """Delete ``voice_ai-*.db`` older than the retention, by the time in their name.

    The newest backup is always kept, however old, and ``latest_backup.db`` is never touched.
    """
    dated = sorted(
        (datetime.strptime(m.group(1), _STAMP), p)
        for p in backup_dir.iterdir()
        if (m := _NAME_RE.match(p.name))
    )
    cutoff = now - timedelta(days=retention_days)
    pruned = [p for taken, p in dated[:-1] if taken < cutoff]
    for p in pruned:
        p.unlink()
    return pruned


def restore_database(
    candidate: Path, db_path: Path, *, backup_dir: Path, now: datetime | None = None
) -> RestoreResult:
    """Replace the live database's contents with ``candidate`` after checking it.

    Nothing is written unless ``candidate`` passes the integrity check and has exactly the
    call store's schema (tables, columns, indexes; a ``calls`` view is refused). The copy goes
    through the backup API into the live file, so a ``-wal`` file beside it is reset too (a
    plain ``cp`` over a WAL database can be undone by its stale ``-wal``). Refused with
    ``WriterRunningError`` while a store writer has the database open; while it runs, no
    writer can open it.
    """
    now = now or datetime.now()
    if not candidate.is_file():
        raise DatabaseMissingError(f"backup file not found: {candidate}")
    calls = verify_database(candidate)
    lock = exclusive_store_lock(db_path)
    try:
        previous = _replace_live(candidate, db_path, backup_dir, now)
    finally:
        os.close(lock)
    return RestoreResult(candidate, calls, previous)


def _replace_live(candidate: Path, db_path: Path, backup_dir: Path, now: datetime) -> Path | None:
    previous: Path | None = None
    if db_path.is_file():
        backup_dir.mkdir(parents=True, exist_ok=True)
        previous = backup_dir / f"pre-restore-{now.strftime(_STAMP)}.db"
        _copy_online(db_path, previous)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"{candidate.resolve().as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = WAL")
    finally:
        dst.close()
        src.close()
    return previous
