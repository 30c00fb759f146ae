"""Records are never dropped: a locked database, a full disk and a bad schema are retried
within a bound, then spooled and replayed; restore refuses a wrong schema and a running writer.

Real SQLite files in tmp_path; the writer port is the real ``StoreWriterCore``; waits are
injected (no sleeps).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.test_store import make_call
from voice_ai.calls.ports import Durability
from voice_ai.records import CallRecord, EndReason
from voice_ai.store import CallStore
from voice_ai.store.backup import restore_database
from voice_ai.store.call_store import PROVISIONAL_PREFIX
from voice_ai.store.durable import DurableRecords
from voice_ai.store.errors import SchemaMismatchError, WriterRunningError
from voice_ai.store.outcome import StoreProblem, WriteOutcome, classify_store_error
from voice_ai.store.schema import open_writer
from voice_ai.store.spool import RecordSpool, record_from_json, record_to_json
from voice_ai.store.writer import StoreWriterCore

pytestmark = pytest.mark.unit


class CoreWriter:
    """The store writer port over the real ``StoreWriterCore``, as the actor exposes it."""

    def __init__(self, core: StoreWriterCore) -> None:
        self.core = core
        self.outcomes: list[WriteOutcome] = []

    async def write_call(self, record: CallRecord) -> WriteOutcome:
        outcome = self.core.write_call(record)
        self.outcomes.append(outcome)
        return outcome


class Waits:
    def __init__(self) -> None:
        self.slept: list[float] = []
        self.now = 0.0

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s

    def clock(self) -> float:
        return self.now


def stored_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT call_id FROM calls ORDER BY call_id")]


def durable(db: Path, spool_dir: Path, **kw: object) -> tuple[DurableRecords, CoreWriter, Waits]:
    writer = CoreWriter(StoreWriterCore(db))
    waits = Waits()
    records = DurableRecords(writer, RecordSpool(spool_dir, "node1"), sleep=waits.sleep,
                             clock=waits.clock, **kw)  # type: ignore[arg-type]
    return records, writer, waits


def test_a_real_lock_full_disk_and_view_are_classified(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    CallStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("INSERT INTO events VALUES ('e', 0, 'k', '', '')")
    holder.execute("ROLLBACK")
    assert classify_store_error(locked.value) is StoreProblem.LOCKED

    full = sqlite3.connect(tmp_path / "tiny.db")
    full.execute("CREATE TABLE t (x BLOB)")
    full.execute("PRAGMA max_page_count = 3")
    with pytest.raises(sqlite3.OperationalError) as no_space:
        full.execute("INSERT INTO t VALUES (zeroblob(100000))")
    assert classify_store_error(no_space.value) is StoreProblem.DISK_FULL
    assert classify_store_error(OSError(28, "No space left on device")) is StoreProblem.DISK_FULL


async def test_database_is_locked_is_retried_until_the_lock_goes(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    records, writer, waits = durable(db, tmp_path / "spool", attempts=4)
    locked = sqlite3.connect(db, isolation_level=None)
    writer.core.write_call(make_call("warm-up"))
    # a VACUUM-like writer holds the lock for the first two attempts
    locked.execute("BEGIN EXCLUSIVE")
    original = writer.core._open()
    original._conn.execute("PRAGMA busy_timeout = 1")  # fail fast instead of waiting 10 s

    async def release_after_two(_s: float) -> None:
        waits.slept.append(_s)
        if len(waits.slept) == 2:
            locked.execute("COMMIT")

    records._sleep = release_after_two
    assert await records.store(make_call("c1")) is Durability.STORED
    assert [o.problem for o in writer.outcomes[-3:]] == [StoreProblem.LOCKED,
                                                          StoreProblem.LOCKED, None]
    assert stored_ids(db) == ["c1", "warm-up"]
    assert records.spool.pending() == 0


async def test_a_full_disk_spools_then_replays_when_space_returns(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    disk = {"full": False}

    def opener(path: Path, transcripts: bool) -> CallStore:
        store = CallStore(path, store_transcripts=transcripts)
        if disk["full"]:  # no page may be added: SQLite answers "database or disk is full"
            pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
            store._conn.execute(f"PRAGMA max_page_count = {pages}")
        return store

    writer = CoreWriter(StoreWriterCore(db, opener=opener))
    waits = Waits()
    records = DurableRecords(writer, RecordSpool(tmp_path / "spool", "node1"), attempts=3,
                             sleep=waits.sleep, clock=waits.clock)
    writer.core.write_call(make_call("before"))
    disk["full"] = True
    writer.core.close()
    big = CallRecord(**{**{f: getattr(make_call("c-full"), f) for f in CallRecord.__slots__},
                        "error": "x" * 200_000})  # needs new pages: there are none
    assert await records.store(big) is Durability.SPOOLED
    assert [o.problem for o in writer.outcomes[-3:]] == [StoreProblem.DISK_FULL] * 3
    assert waits.slept == [0.25, 0.5]  # bounded: 3 attempts, 2 waits, then the spool
    assert records.spool.pending() == 1 and "c-full" not in stored_ids(db)

    # space comes back (the writer reopens its connection after a disk error)
    disk["full"] = False
    assert await records.store(make_call("c-next")) is Durability.STORED
    await asyncio.wait_for(records._replay, 5)  # the write triggered a background replay
    assert stored_ids(db) == ["before", "c-full", "c-next"]
    assert records.spool.pending() == 0


async def test_a_view_for_calls_is_a_schema_problem_and_records_wait_in_the_spool(
        tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    CallStore(db).close()
    with sqlite3.connect(db) as conn:  # a "restored" file whose calls is a view
        conn.execute("ALTER TABLE calls RENAME TO calls_data")
        conn.execute("CREATE VIEW calls AS SELECT * FROM calls_data")
    with pytest.raises(SchemaMismatchError, match="calls is a view, expected a table"):
        open_writer(db)
    records, writer, _ = durable(db, tmp_path / "spool", attempts=2)
    assert await records.store(make_call("c1")) is Durability.SPOOLED
    assert {o.problem for o in writer.outcomes} == {StoreProblem.SCHEMA}
    assert [r.call_id for r in _spooled(records.spool)] == ["c1"]


def test_restore_refuses_a_calls_view_and_a_running_writer(tmp_path: Path) -> None:
    live, backups = tmp_path / "live.db", tmp_path / "backups"
    good = tmp_path / "good.db"
    with CallStore(good) as store:
        store.write_call(make_call("from-backup"))
    bad = tmp_path / "bad.db"
    with CallStore(bad):
        pass
    with sqlite3.connect(bad) as conn:
        conn.execute("DROP TABLE turns")
        conn.execute("CREATE VIEW turns AS SELECT 1 AS call_id")
    with CallStore(live) as store:
        store.write_call(make_call("live-1"))
        with pytest.raises(WriterRunningError, match="stop the application"):
            restore_database(good, live, backup_dir=backups)
    with pytest.raises(SchemaMismatchError, match="turns is a view"):
        restore_database(bad, live, backup_dir=backups)
    assert stored_ids(live) == ["live-1"]  # refused: untouched
    restore_database(good, live, backup_dir=backups)  # writer closed: allowed
    assert stored_ids(live) == ["from-backup"]


def test_a_writer_cannot_open_during_a_restore(tmp_path: Path) -> None:
    from voice_ai.store.call_store import exclusive_store_lock

    db = tmp_path / "v.db"
    CallStore(db).close()
    import os

    fd = exclusive_store_lock(db)
    try:
        outcome = StoreWriterCore(db).write_call(make_call("during-restore"))
    finally:
        os.close(fd)
    assert outcome.problem is StoreProblem.SCHEMA and "being restored" in outcome.detail


def test_the_calls_own_record_replaces_a_provisional_one(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    with CallStore(db) as store:
        lost = make_call("c1", end_reason=EndReason.NODE_LOST, turns=())
        provisional = CallRecord(**{**{f: getattr(lost, f) for f in lost.__slots__},
                                    "error": PROVISIONAL_PREFIX + "call actor lost"})
        assert store.write_call(provisional)
        assert store.write_call(make_call("c1"))  # surfaced later from a spool: it wins
        assert not store.write_call(provisional)  # and a provisional one never overwrites
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT end_reason, turn_count FROM calls").fetchall() == [
            ("caller_hangup", 2)]


def test_spool_round_trip_and_partial_replay(tmp_path: Path) -> None:
    spool = RecordSpool(tmp_path, "n1")
    records = [make_call(f"c{i}") for i in range(4)]
    for r in records:
        spool.append(r)
    assert record_from_json(record_to_json(records[0])) == records[0]
    taken: list[str] = []

    async def refuse_third(r: CallRecord) -> bool:
        if len(taken) == 2:
            return False
        taken.append(r.call_id)
        return True

    result = asyncio.run(spool.replay(refuse_third))
    assert (result.replayed, result.remaining, taken) == (2, 2, ["c0", "c1"])
    assert [r.call_id for r in _spooled(spool)] == ["c2", "c3"]


def _spooled(spool: RecordSpool) -> list[CallRecord]:
    return [record_from_json(ln) for ln in spool.path.read_text().splitlines() if ln]


async def test_a_spooled_record_is_scrubbed_like_the_store(tmp_path: Path) -> None:
    from voice_ai.observability.scrub import Scrubber, scrub_record

    class Refusing:
        async def write_call(self, record: CallRecord) -> WriteOutcome:
            return WriteOutcome.failed(StoreProblem.DISK_FULL, "database or disk is full")

    scrubber = Scrubber(["sk-test-secret-0123456789"])
    waits = Waits()
    records = DurableRecords(Refusing(), RecordSpool(tmp_path, "n1"), attempts=1,
                             sleep=waits.sleep, clock=waits.clock,
                             scrub=lambda r: scrub_record(r, scrubber))
    leaky = CallRecord(**{**{f: getattr(make_call("c1"), f) for f in CallRecord.__slots__},
                          "error": "openai said sk-test-secret-0123456789 for +15550100067"})
    assert await records.store(leaky) is Durability.SPOOLED
    text = records.spool.path.read_text()
    assert "sk-test-secret-0123456789" not in text and "+15550100067" not in text
    assert _spooled(records.spool)[0].call_id == "c1"
