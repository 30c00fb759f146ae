"""CallStore: schema, WAL, idempotent writes, privacy of transcripts, the runbook's sqlite3."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from voice_ai.records import CallDirection, CallRecord, EndReason, TurnTimings
from voice_ai.store import (
    SCHEMA_VERSION,
    CallStore,
    DatabaseCorruptError,
    EventKind,
    SchemaVersionError,
)
from voice_ai.store.schema import MIGRATIONS

pytestmark = pytest.mark.unit

T0 = 1_780_000_000.0


def make_turn(index: int, at: float, e2e_s: float | None = 1.0, **kw: object) -> TurnTimings:
    fields: dict[str, object] = {
        "stt_s": 0.2, "end_of_turn_s": 0.3, "llm_ttft_s": 0.4, "tts_ttfb_s": 0.1,
        "stt_provider": "whisper", "llm_provider": "local", "tts_provider": "piper",
        "user_text": "I'd like to book a cleaning", "agent_text": "Sure, which day suits you?",
    }
    fields.update(kw)
    return TurnTimings(index=index, ended_speaking_at=at, e2e_s=e2e_s, **fields)  # type: ignore[arg-type]


def make_call(
    call_id: str,
    *,
    started_at: float = T0,
    duration_s: float = 60.0,
    end_reason: EndReason = EndReason.CALLER_HANGUP,
    turns: tuple[TurnTimings, ...] | None = None,
) -> CallRecord:
    if turns is None:
        turns = (make_turn(0, started_at + 5), make_turn(1, started_at + 15))
    return CallRecord(
        call_id=call_id, direction=CallDirection.INBOUND, started_at=started_at,
        ended_at=started_at + duration_s, end_reason=end_reason, caller_masked="+1******67",
        node_id="node-a", setup_s=0.02, turns=turns,
    )


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_new_database_is_wal_and_at_the_latest_schema(tmp_path: Path) -> None:
    db = tmp_path / "data" / "voice_ai.db"
    CallStore(db).close()
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    tables = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"calls", "turns", "events"} <= tables


def test_a_call_and_its_turns_are_stored_once_however_often_written(tmp_path: Path) -> None:
    store = CallStore(tmp_path / "v.db")
    record = make_call("c1", turns=(
        make_turn(0, T0 + 5, fallback_used=True, stt_provider="whisper-fallback"),
        make_turn(1, T0 + 15, e2e_s=1.25),
    ))
    assert store.write_call(record) is True
    assert store.write_call(record) is False
    store.close()
    db = tmp_path / "v.db"
    assert rows(db, "SELECT call_id, direction, caller_masked, outcome, end_reason, node_id, "
                    "providers_used, fallback_used, turn_count FROM calls") == [
        ("c1", "inbound", "+1******67", "completed", "caller_hangup", "node-a",
         "local,piper,whisper,whisper-fallback", 1, 2)
    ]
    assert rows(db, "SELECT turn_index, e2e_s, stt_s, end_of_turn_s, llm_ttft_s, tts_ttfb_s "
                    "FROM turns ORDER BY turn_index") == [
        (0, 1.0, 0.2, 0.3, 0.4, 0.1), (1, 1.25, 0.2, 0.3, 0.4, 0.1)
    ]


def test_a_record_the_table_refuses_raises_instead_of_passing_for_already_stored(
        tmp_path: Path) -> None:
    """A record with a hole where the table needs a value (here ended_at) must fail loudly, so
    it is retried and spooled; reported as 'already stored' it would be lost without a word."""
    store = CallStore(tmp_path / "v.db")
    broken = dataclasses.replace(make_call("c1"), ended_at=None)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        store.write_call(broken)
    assert store.write_call(make_call("c1")) is True  # nothing half-written was left behind
    store.close()


def test_a_second_connection_in_the_writer_process_does_not_cost_it_its_wal(
        tmp_path: Path) -> None:
    """The store writer holds the call store and, beside it, the appointments connection. Its
    first use once read the file header with a plain open(): closing that descriptor dropped
    the process's SQLite locks, so another process's reader, closing, took itself for the
    last connection and deleted the WAL under the writer; every later commit was lost."""
    from voice_ai.store.appointments import AppointmentWriter

    db = tmp_path / "v.db"
    store = CallStore(db)
    store.write_call(make_call("before"))
    AppointmentWriter(db).booked_on(date(2026, 12, 1))  # the second connection, first use
    read = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "print(sorted(r[0] for r in c.execute('SELECT call_id FROM calls'))); c.close()")
    subprocess.run([sys.executable, "-c", read, str(db)], check=True, capture_output=True)
    store.write_call(make_call("after"))
    seen = subprocess.run([sys.executable, "-c", read, str(db)], check=True,
                          capture_output=True, text=True).stdout
    assert seen.strip() == "['after', 'before']"
    store.close()


def test_transcripts_are_not_kept_unless_the_setting_allows(tmp_path: Path) -> None:
    private, kept = tmp_path / "private.db", tmp_path / "kept.db"
    CallStore(private).write_call(make_call("c1"))
    CallStore(kept, store_transcripts=True).write_call(make_call("c1"))
    assert rows(private, "SELECT user_text, agent_text FROM turns") == [(None, None)] * 2
    assert rows(kept, "SELECT user_text, agent_text FROM turns LIMIT 1") == [
        ("I'd like to book a cleaning", "Sure, which day suits you?")
    ]


def test_events_are_idempotent_by_event_id(tmp_path: Path) -> None:
    store = CallStore(tmp_path / "v.db")
    assert store.write_event(EventKind.BREAKER, component="deepgram", detail="closed->open",
                             ts=T0, event_id="e1")
    assert not store.write_event(EventKind.BREAKER, component="deepgram",
                                 detail="closed->open", ts=T0, event_id="e1")
    store.write_event(EventKind.ERROR, component="llm", detail="timeout", ts=T0 + 1)
    assert rows(tmp_path / "v.db", "SELECT kind, component, detail FROM events ORDER BY ts") == [
        ("breaker", "deepgram", "closed->open"), ("error", "llm", "timeout")
    ]


def test_an_older_schema_is_migrated_forward(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.close()
    CallStore(db).close()
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    indexes = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type='index'")}
    assert "calls_started_at" in indexes


def test_a_newer_schema_or_a_foreign_file_is_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer than this program"):
        CallStore(newer)
    text = tmp_path / "notes.db"
    text.write_text("this is not a database\n" * 100)
    with pytest.raises(DatabaseCorruptError, match="not a SQLite database"):
        CallStore(text)
    assert text.read_text().startswith("this is not a database")


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="sqlite3 command not installed")
def test_the_runbooks_sqlite3_commands_work_on_the_store(tmp_path: Path) -> None:
    db = tmp_path / "voice_ai.db"
    store = CallStore(db)
    store.write_call(make_call("c1"))
    for command, expected in (("PRAGMA integrity_check;", "ok"), ("VACUUM;", ""),
                              ("ANALYZE;", ""), (".tables", "appointments  calls  events  turns")):
        out = subprocess.run(["sqlite3", str(db), command], capture_output=True, text=True,
                             check=True, timeout=30)
        assert out.stdout.split() == expected.split(), command
    store.write_call(make_call("c2"))  # the writer carries on after the maintenance
    assert rows(db, "SELECT count(*) FROM calls") == [(2,)]
