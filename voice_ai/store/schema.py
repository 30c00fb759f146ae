"""The store's schema as numbered migrations, and how connections to it are opened.

The schema version lives in ``PRAGMA user_version``. ``migrate`` applies every migration above
it, each in its own ``BEGIN IMMEDIATE`` transaction, so two processes opening the same file at
once cannot apply one twice. Migrations are append-only: never edit a released one, add the next.

Tables (times are unix seconds, durations seconds):

- ``calls``  one row per call: id, start/end, direction, masked caller, outcome, end reason,
  node, providers used (comma-separated), fallback used, setup time, error text.
- ``turns``  one row per caller turn: end of turn, STT, LLM first token, TTS first byte, end to
  end; ``user_text``/``agent_text`` are NULL unless ``STORE_TRANSCRIPTS`` is on.
- ``events`` breaker transitions, errors, rejections: kind, component, detail, time.
- ``appointments`` booked by the agent's tools: local day, start ``HH:MM``, service, caller's
  name as given, call id, status (booked / cancelled).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from voice_ai.store.errors import (
    DatabaseCorruptError,
    DatabaseMissingError,
    SchemaMismatchError,
    SchemaVersionError,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "integrity_errors",
    "migrate",
    "open_readonly",
    "open_writer",
    "schema_problems",
    "schema_version",
]

BUSY_TIMEOUT_MS = 10_000

MIGRATIONS: tuple[str, ...] = (
    # 1: the three tables.
    """
    CREATE TABLE calls (
        call_id        TEXT PRIMARY KEY,
        direction      TEXT NOT NULL,
        started_at     REAL NOT NULL,
        ended_at       REAL NOT NULL,
        caller_masked  TEXT NOT NULL DEFAULT '',
        outcome        TEXT NOT NULL,
        end_reason     TEXT NOT NULL,
        node_id        TEXT NOT NULL DEFAULT '',
        providers_used TEXT NOT NULL DEFAULT '',
        fallback_used  INTEGER NOT NULL DEFAULT 0,
        setup_s        REAL,
        warm_start     INTEGER NOT NULL DEFAULT 1,
        error          TEXT NOT NULL DEFAULT '',
        recording_path TEXT NOT NULL DEFAULT '',
        turn_count     INTEGER NOT NULL DEFAULT 0,
        written_at     REAL NOT NULL
    );
    CREATE TABLE turns (
        call_id           TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
        turn_index        INTEGER NOT NULL,
        ended_speaking_at REAL NOT NULL,
        end_of_turn_s     REAL,
        stt_s             REAL,
        llm_ttft_s        REAL,
        tts_ttfb_s        REAL,
        e2e_s             REAL,
        stt_provider      TEXT NOT NULL DEFAULT '',
        llm_provider      TEXT NOT NULL DEFAULT '',
        tts_provider      TEXT NOT NULL DEFAULT '',
        fallback_used     INTEGER NOT NULL DEFAULT 0,
        interrupted       INTEGER NOT NULL DEFAULT 0,
        user_text         TEXT,
        agent_text        TEXT,
        PRIMARY KEY (call_id, turn_index)
    );
    CREATE TABLE events (
        event_id  TEXT PRIMARY KEY,
        ts        REAL NOT NULL,
        kind      TEXT NOT NULL,
        component TEXT NOT NULL DEFAULT '',
        detail    TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: indexes for the reports' time windows.
    """
    CREATE INDEX calls_started_at ON calls(started_at);
    CREATE INDEX events_ts ON events(ts);
    """,
    # 3: appointments the agent booked (voice_ai/store/appointments.py); one booked
    # appointment per day and start time.
    """
    CREATE TABLE appointments (
        appointment_id TEXT PRIMARY KEY,
        day            TEXT NOT NULL,
        start          TEXT NOT NULL,
        duration_min   INTEGER NOT NULL,
        service        TEXT NOT NULL,
        caller_name    TEXT NOT NULL DEFAULT '',
        call_id        TEXT NOT NULL DEFAULT '',
        status         TEXT NOT NULL,
        created_at     REAL NOT NULL,
        updated_at     REAL NOT NULL
    );
    CREATE UNIQUE INDEX appointments_slot ON appointments(day, start) WHERE status = 'booked';
    CREATE INDEX appointments_created_at ON appointments(created_at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; return the version found before."""
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database schema version {found} is newer than this program's ({SCHEMA_VERSION})"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) >= version:  # another process got there first
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _check_header(path: Path) -> None:
    """Refuse a missing file or one that is not SQLite, asking SQLite itself.

    Never with a plain ``open()``: closing any descriptor of the database file drops every
    POSIX lock this process holds on it, the locks of its open SQLite connections included
    (SQLite's own closes are deferred while those are open). The store writer's second
    connection (appointments) once did that on first use; another process's reader then
    took itself for the last connection, checkpointed and deleted the WAL under the writer,
    and every later commit went to the deleted file: acknowledged, never seen, gone at exit.
    """
    if not path.is_file():
        raise DatabaseMissingError(f"database not found: {path}")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e):
            raise DatabaseCorruptError(f"not a SQLite database: {path}") from None
        raise
    finally:
        conn.close()


def open_writer(path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """Open (creating if needed) the database for writing: WAL, synchronous=FULL, migrated.

    ``synchronous=FULL`` makes every commit durable on disk, not only across a process crash:
    a record acknowledged to a call is there after a power loss too.
    """
    if path.exists():
        _check_header(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DatabaseCorruptError(f"cannot switch {path} to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
        problems = schema_problems(conn)
        if problems:
            raise SchemaMismatchError(
                f"{path} does not have the call store's schema: {'; '.join(problems[:3])}")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise DatabaseCorruptError(f"cannot use database {path}: {e}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def open_readonly(path: Path, *, require_current: bool = True) -> sqlite3.Connection:
    """Open an existing database read-only, for reports and checks; never creates a file."""
    _check_header(path)
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = schema_version(conn)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise DatabaseCorruptError(f"cannot read database {path}: {e}") from None
    if require_current and version != SCHEMA_VERSION:
        conn.close()
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"database schema version {version} is newer than this program's "
                f"({SCHEMA_VERSION})"
            )
        raise SchemaVersionError(
            f"{path} has schema version {version}, not {SCHEMA_VERSION}: it is not a call store "
            "database, or the store writer has not opened it yet"
        )
    return conn


def integrity_errors(path: Path) -> list[str]:
    """Run ``PRAGMA integrity_check`` on ``path``; return its complaints (empty when "ok")."""
    try:
        conn = open_readonly(path, require_current=False)
    except DatabaseCorruptError as e:
        return [str(e)]
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as e:
        return [f"integrity check could not run: {e}"]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


# (type, name) -> columns as (name, declared type, not null, primary key position); None for
# objects without columns (indexes). Built from the migrations themselves, so never stale.
_Shape = dict[tuple[str, str], tuple[tuple[str, str, int, int], ...] | None]
_EXPECTED: dict[int, _Shape] = {}


def _shape(conn: sqlite3.Connection) -> _Shape:
    shape: _Shape = {}
    rows = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
    for kind, name in rows:
        columns = None
        if kind in ("table", "view"):
            columns = tuple((str(r[1]), str(r[2]).upper(), int(r[3]), int(r[5]))
                            for r in conn.execute(f'PRAGMA table_info("{name}")'))
        shape[(str(kind), str(name))] = columns
    return shape


def _expected(version: int) -> _Shape:
    if version not in _EXPECTED:
        mem = sqlite3.connect(":memory:", isolation_level=None)
        try:
            for script in MIGRATIONS[:version]:
                for statement in _statements(script):
                    mem.execute(statement)
            _EXPECTED[version] = _shape(mem)
        finally:
            mem.close()
    return _EXPECTED[version]


def schema_problems(conn: sqlite3.Connection) -> list[str]:
    """How the database's tables, columns and indexes differ from what the migrations up to
    its ``user_version`` create (empty: as expected). Extra objects are allowed; a missing
    one, a view where a table belongs, or a changed column is a problem."""
    version = schema_version(conn)
    if not 1 <= version <= SCHEMA_VERSION:
        return [f"schema version {version} (expected 1..{SCHEMA_VERSION})"]
    found = _shape(conn)
    found_kinds = {name: kind for kind, name in found}
    problems = []
    for (kind, name), columns in _expected(version).items():
        if (kind, name) not in found:
            other = found_kinds.get(name)
            problems.append(f"{name} is a {other}, expected a {kind}" if other
                            else f"{kind} {name} is missing")
        elif columns is not None:
            have = {c[0]: c for c in found[(kind, name)] or ()}
            changed = [c[0] for c in columns if have.get(c[0]) != c]
            if changed:  # missing or redefined; extra columns are harmless
                problems.append(f"{kind} {name} has missing or changed columns: "
                                f"{', '.join(changed)}")
    return problems
