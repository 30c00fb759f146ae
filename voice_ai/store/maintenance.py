"""The runbook's database maintenance: integrity check, VACUUM, ANALYZE.

Each is the runbook's ``sqlite3 data/voice_ai.db "..."`` command, run against the configured
path with a busy timeout so it waits for the writer instead of failing with "database is locked".
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from voice_ai.store.errors import DatabaseCorruptError, DatabaseMissingError
from voice_ai.store.schema import (
    BUSY_TIMEOUT_MS,
    SCHEMA_VERSION,
    integrity_errors,
    open_readonly,
    schema_version,
)

__all__ = ["DatabaseCheck", "analyze_database", "check_database", "vacuum_database"]


@dataclass(frozen=True, slots=True)
class DatabaseCheck:
    path: Path
    ok: bool
    problems: tuple[str, ...]
    schema_version: int | None
    calls: int | None
    turns: int | None
    events: int | None
    size_bytes: int
    wal_bytes: int


def _wal_size(db_path: Path) -> int:
    wal = db_path.with_name(db_path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def check_database(db_path: Path) -> DatabaseCheck:
    """``PRAGMA integrity_check`` plus row counts; ``ok`` is False when SQLite complains."""
    if not db_path.is_file():
        raise DatabaseMissingError(f"database not found: {db_path}")
    problems = tuple(integrity_errors(db_path))
    version = calls = turns = events = None
    if not problems:
        conn = open_readonly(db_path, require_current=False)
        try:
            version = schema_version(conn)
            counts = [_count(conn, t) for t in ("calls", "turns", "events")]
            calls, turns, events = counts
        finally:
            conn.close()
        if not 1 <= version <= SCHEMA_VERSION:
            problems = (f"not a call store database (schema version {version})",)
    return DatabaseCheck(
        db_path, not problems, problems, version, calls, turns, events,
        db_path.stat().st_size, _wal_size(db_path),
    )


def _count(conn: sqlite3.Connection, table: str) -> int | None:
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # not a call store table: report the file, not a crash
        return None


def _run(db_path: Path, statement: str) -> None:
    if not db_path.is_file():
        raise DatabaseMissingError(f"database not found: {db_path}")
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(statement)
    except sqlite3.DatabaseError as e:
        raise DatabaseCorruptError(f"{statement} failed on {db_path}: {e}") from None
    finally:
        conn.close()


def vacuum_database(db_path: Path) -> tuple[int, int]:
    """VACUUM, then truncate the WAL; return (bytes before, bytes after), WAL included."""
    before = db_path.stat().st_size + _wal_size(db_path) if db_path.is_file() else 0
    _run(db_path, "VACUUM")
    _run(db_path, "PRAGMA wal_checkpoint(TRUNCATE)")
    return before, db_path.stat().st_size + _wal_size(db_path)


def analyze_database(db_path: Path) -> None:
    """ANALYZE: refresh the query planner's statistics."""
    _run(db_path, "ANALYZE")
