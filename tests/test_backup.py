"""Online backups, restore and maintenance, through the functions and the CLI."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.test_store import make_call, make_turn, rows
from voice_ai.cli.store_cmds import register
from voice_ai.store import SCHEMA_VERSION, CallStore, DatabaseCorruptError
from voice_ai.store.backup import backup_database, restore_database, verify_database

pytestmark = pytest.mark.unit


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    found = {"db": tmp_path / "data" / "voice_ai.db", "backups": tmp_path / "backups",
             "data": tmp_path / "data"}
    monkeypatch.setenv("DB_PATH", str(found["db"]))
    monkeypatch.setenv("BACKUP_DIR", str(found["backups"]))
    monkeypatch.setenv("DATA_DIR", str(found["data"]))
    monkeypatch.setenv("BASELINE_PATH", str(tmp_path / "data" / "baseline.json"))
    return found


def cli(*args: str, input: str | None = None) -> tuple[int, str, str]:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def consistent(db: Path) -> None:
    """Every stored call has exactly the turns its row says: no half-written call."""
    mismatched = rows(db, "SELECT c.call_id FROM calls c LEFT JOIN turns t USING (call_id) "
                          "GROUP BY c.call_id HAVING count(t.turn_index) != c.turn_count")
    assert mismatched == []
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]


def write_continuously(db: Path, stop: threading.Event, written: list[str]) -> None:
    store = CallStore(db)
    i = 0
    while not stop.is_set():
        turns = tuple(make_turn(k, 1_780_000_000.0 + k) for k in range(1 + i % 4))
        store.write_call(make_call(f"w{i}", turns=turns))
        written.append(f"w{i}")
        i += 1
    store.close()


def test_a_backup_taken_during_writes_restores_to_a_consistent_database(
    paths: dict[str, Path],
) -> None:
    CallStore(paths["db"]).close()
    stop, written = threading.Event(), list[str]()
    writer = threading.Thread(target=write_continuously, args=(paths["db"], stop, written))
    writer.start()
    try:
        while len(written) < 30:
            stop.wait(0.01)
        code, out, err = cli("backup")
    finally:
        stop.set()
        writer.join()
    assert code == 0, err
    backup = next(paths["backups"].glob("voice_ai-*.db"))
    assert f"backup written: {backup}" in out
    assert (paths["backups"] / "latest_backup.db").read_bytes() == backup.read_bytes()
    consistent(backup)
    in_backup = {r[0] for r in rows(backup, "SELECT call_id FROM calls")}
    assert 30 <= len(in_backup) <= len(written)
    assert in_backup <= set(written)
    assert f"({len(in_backup)} calls, " in out
    # A standalone file: no WAL mode, so `cp` and the sqlite3 shell work on it as is.
    assert rows(backup, "PRAGMA journal_mode") == [("delete",)]

    target = paths["data"] / "restored.db"
    result = restore_database(backup, target, backup_dir=paths["backups"])
    assert result.calls == len(in_backup)
    consistent(target)
    assert {r[0] for r in rows(target, "SELECT call_id FROM calls")} == in_backup


def test_backups_older_than_the_retention_are_pruned_but_never_the_newest(
    tmp_path: Path,
) -> None:
    db, backups = tmp_path / "v.db", tmp_path / "backups"
    with CallStore(db) as store:
        store.write_call(make_call("c1"))
    now = datetime(2026, 5, 20, 18, 0, 0)
    first = backup_database(db, backups, retention_days=14, now=now - timedelta(days=20))
    second = backup_database(db, backups, retention_days=14, now=now - timedelta(days=15))
    assert first.pruned == ()  # the only one is the newest, however old
    assert second.pruned == ()  # 5 days older than the newest
    third = backup_database(db, backups, retention_days=14, now=now)
    assert third.path.name == "voice_ai-20260520-180000.db"
    assert third.pruned == (first.path, second.path)
    names = sorted(p.name for p in backups.iterdir())
    assert names == ["latest_backup.db", "voice_ai-20260520-180000.db"]


def corrupt_copy(source: Path, target: Path) -> None:
    """A SQLite file whose header is fine but whose b-tree pages are garbage."""
    data = bytearray(source.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for page in range(1, len(data) // page_size):
        start = page * page_size
        data[start:start + 64] = b"\xff" * 64
    target.write_bytes(bytes(data))


def test_restore_refuses_a_corrupt_file_and_leaves_the_live_database_alone(
    paths: dict[str, Path],
) -> None:
    store = CallStore(paths["db"])
    for i in range(40):
        store.write_call(make_call(f"c{i}"))
    store.close()
    assert cli("backup")[0] == 0
    before = digest(paths["db"])

    bad = paths["backups"] / "damaged.db"
    corrupt_copy(paths["backups"] / "latest_backup.db", bad)
    with pytest.raises(DatabaseCorruptError):
        verify_database(bad)
    code, out, err = cli("restore", str(bad), "--yes")
    assert code == 1
    assert err.startswith(f"error: {bad} failed the integrity check")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out

    text = paths["backups"] / "notes.txt"
    text.write_text("not a database at all\n")
    code, _, err = cli("restore", str(text), "--yes")
    assert (code, err.strip()) == (1, f"error: {text} failed the integrity check: "
                                      f"not a SQLite database: {text}")
    code, _, err = cli("restore", str(paths["backups"] / "missing.db"), "--yes")
    assert code == 1 and "backup file not found" in err
    assert digest(paths["db"]) == before
    assert rows(paths["db"], "SELECT count(*) FROM calls") == [(40,)]


def test_restore_replaces_the_live_database_and_keeps_the_previous_one(
    paths: dict[str, Path],
) -> None:
    store = CallStore(paths["db"])
    store.write_call(make_call("kept"))
    assert cli("backup")[0] == 0
    store.write_call(make_call("after-backup"))
    store.close()
    code, out, err = cli("restore", str(paths["backups"] / "latest_backup.db"), input="y\n")
    assert code == 0, err
    assert "(1 calls)" in out and "previous database kept as" in out
    assert rows(paths["db"], "SELECT call_id FROM calls") == [("kept",)]
    previous = next(paths["backups"].glob("pre-restore-*.db"))
    assert sorted(rows(previous, "SELECT call_id FROM calls")) == [("after-backup",), ("kept",)]
    CallStore(paths["db"]).write_call(make_call("next"))  # the writer opens it and carries on
    consistent(paths["db"])


def test_restore_asks_first_and_does_nothing_on_no(paths: dict[str, Path]) -> None:
    with CallStore(paths["db"]) as store:  # closed: its WAL is checkpointed before the digest
        store.write_call(make_call("c1"))
    assert cli("backup")[0] == 0
    before = digest(paths["db"])
    code, _, _ = cli("restore", str(paths["backups"] / "latest_backup.db"), input="n\n")
    assert code == 1
    assert digest(paths["db"]) == before


def test_db_check_vacuum_and_analyze(paths: dict[str, Path]) -> None:
    store = CallStore(paths["db"])
    for i in range(5):
        store.write_call(make_call(f"c{i}"))
    store.write_event("error", component="stt", detail="timeout", ts=1_780_000_000.0)
    store.close()
    code, out, err = cli("db", "check")
    assert code == 0, err
    assert (f"{paths['db']}: integrity ok, schema version {SCHEMA_VERSION}, 5 calls, "
            "10 turns, 1 events") in out
    code, out, _ = cli("db", "vacuum")
    assert code == 0 and out.startswith(f"vacuumed {paths['db']}: ")
    assert (code := cli("db", "analyze")[0]) == 0
    assert rows(paths["db"], "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'calls'") != [(0,)]


def test_maintenance_on_a_missing_or_damaged_database_says_so(paths: dict[str, Path]) -> None:
    for command in (["db", "check"], ["db", "vacuum"], ["db", "analyze"], ["backup"]):
        code, out, err = cli(*command)
        assert (code, err.strip()) == (1, f"error: database not found: {paths['db']}"), command
    with CallStore(paths["db"]) as store:
        store.write_call(make_call("c1"))
    damaged = paths["data"] / "damaged.db"
    corrupt_copy(paths["db"], damaged)
    damaged.replace(paths["db"])
    for suffix in ("-wal", "-shm"):
        paths["db"].with_name(paths["db"].name + suffix).unlink(missing_ok=True)
    code, out, err = cli("db", "check")
    assert code == 1 and err.startswith(f"error: integrity check failed for {paths['db']}")
    assert "Traceback" not in out + err


def test_a_bad_setting_is_one_line_and_exit_2(
    paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKUP_RETENTION_DAYS", "forever")
    code, out, err = cli("backup")
    assert code == 2
    assert err.strip().startswith("configuration error: BACKUP_RETENTION_DAYS='forever'")
    assert len(err.strip().splitlines()) == 1


def test_sqlite_backup_api_copy_is_readable_by_a_plain_connection(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    CallStore(db).write_call(make_call("c1"))
    result = backup_database(db, tmp_path / "b", retention_days=1)
    conn = sqlite3.connect(result.latest)
    assert conn.execute("SELECT caller_masked FROM calls").fetchall() == [("+1******67",)]
    conn.close()


def test_a_sqlite_file_that_is_not_a_call_store_is_refused(paths: dict[str, Path]) -> None:
    with CallStore(paths["db"]) as store:
        store.write_call(make_call("c1"))
    foreign = paths["backups"] / "other.db"
    foreign.parent.mkdir(parents=True)
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    before = digest(paths["db"])
    code, _, err = cli("restore", str(foreign), "--yes")
    assert (code, err.strip()) == (
        1, f"error: {foreign} is not a call store database (schema version 0)")
    assert digest(paths["db"]) == before
