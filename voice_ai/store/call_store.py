"""``CallStore``: writes call records and events to the SQLite store.

One ``CallStore`` per process that writes; in the cluster that is the single ``StoreWriter``
actor on the head node (``actors/store_writer.py``). Every write is one transaction committed
with ``synchronous=FULL`` before the method returns, so a ``True``/``False`` answer means the
record is on disk. Writes are idempotent by ``call_id`` (and by ``event_id`` for events): a
client that retries after losing an acknowledgement never creates a duplicate.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from voice_ai.observability.scrub import Scrubber, scrub_record
from voice_ai.records import CallRecord, TurnTimings
from voice_ai.store.errors import StoreError, WriterRunningError
from voice_ai.store.schema import BUSY_TIMEOUT_MS, open_writer

__all__ = ["ADMITTED_PREFIX", "PROVISIONAL_PREFIX", "CallStore", "EventKind",
           "exclusive_store_lock", "writer_lock_path"]

# A record written for a call whose actor was lost while no dispatcher watched it starts its
# error with this. The call actor's own record, if it surfaces later from a spool, replaces it.
PROVISIONAL_PREFIX = "provisional: "


def writer_lock_path(db_path: Path) -> Path:
    """Writers hold a shared ``flock`` on this file while their connection is open; a restore
    takes it exclusively, so it refuses while a writer runs and no writer opens meanwhile."""
    return db_path.with_name(db_path.name + ".writer.lock")


def _lock(db_path: Path, mode: int) -> int:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(writer_lock_path(db_path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    return fd


def exclusive_store_lock(db_path: Path) -> int:
    """The restore's lock (an fd to close when done). ``WriterRunningError`` if a writer has
    the database open."""
    try:
        return _lock(db_path, fcntl.LOCK_EX)
    except BlockingIOError:
        raise WriterRunningError(
            f"the store writer has {db_path} open: stop the application (its Ray cluster) "
            "before restoring") from None


class EventKind:
    """The event kinds the reports know about; other kinds are stored and listed as they are."""

    BREAKER = "breaker"
    ERROR = "error"
    REJECTION = "rejection"
    # the dispatcher's journal of admitted calls (voice_ai/calls/journal.py): written at
    # admission, deleted with the call's record; what remains after a restart is a call that
    # may have been lost. Left out of the reports.
    CALL_ADMITTED = "call_admitted"


ADMITTED_PREFIX = "admitted:"  # event id of a call's admission: ADMITTED_PREFIX + call id


_ADMITTED_DONE_SQL = """
DELETE FROM events WHERE event_id = ?
"""
_OPEN_ADMISSIONS_SQL = """
SELECT e.detail FROM events e
WHERE e.kind = ? AND e.ts >= ?
  AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = substr(e.event_id, ?))
ORDER BY e.ts
"""
_PROVISIONAL_SQL = """
DELETE FROM calls WHERE call_id = ? AND error LIKE 'provisional: %'
"""
# "already stored" is a conflict on the key and nothing else: OR IGNORE would also skip, with
# rowcount 0 and no error, a row that breaks a NOT NULL or CHECK constraint, and the record
# would be reported stored while it is lost. ON CONFLICT(key) DO NOTHING lets those raise.
_CALL_SQL = """
INSERT INTO calls (
    call_id, direction, started_at, ended_at, caller_masked, outcome, end_reason, node_id,
    providers_used, fallback_used, setup_s, warm_start, error, recording_path, turn_count,
    written_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(call_id) DO NOTHING
"""
_TURN_SQL = """
INSERT INTO turns (
    call_id, turn_index, ended_speaking_at, end_of_turn_s, stt_s, llm_ttft_s, tts_ttfb_s, e2e_s,
    stt_provider, llm_provider, tts_provider, fallback_used, interrupted, user_text, agent_text
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_EVENT_SQL = """
INSERT INTO events (event_id, ts, kind, component, detail) VALUES (?, ?, ?, ?, ?)
ON CONFLICT(event_id) DO NOTHING
"""


class CallStore:
    """The write side of the store. Not thread-safe: one caller at a time (an actor is)."""

    def __init__(
        self,
        db_path: Path,
        *,
        store_transcripts: bool = False,
        clock: Callable[[], float] = time.time,
        scrub: Callable[[str], str] | None = None,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self.db_path = db_path
        self._store_transcripts = store_transcripts
        self._clock = clock
        # what the log files get: numbers masked, secrets redacted, at the write boundary
        # (pass Scrubber(configured keys) to also catch the exact keys)
        self._scrub = scrub or Scrubber()
        try:
            self._lock_fd = _lock(db_path, fcntl.LOCK_SH)
        except BlockingIOError:
            raise StoreError(f"{db_path} is being restored; writes wait for the restore") from None
        try:
            self._conn = open_writer(db_path, busy_timeout_ms=busy_timeout_ms)
        except BaseException:
            os.close(self._lock_fd)
            raise

    def write_call(self, record: CallRecord) -> bool:
        """Commit ``record`` and its turns; ``True`` if new, ``False`` if already stored."""
        record = scrub_record(record, self._scrub)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not record.error.startswith(PROVISIONAL_PREFIX):
                conn.execute(_PROVISIONAL_SQL, (record.call_id,))  # the real record wins
            cur = conn.execute(_CALL_SQL, self._call_row(record))
            inserted = cur.rowcount == 1
            if inserted:
                conn.executemany(_TURN_SQL, [self._turn_row(record.call_id, t)
                                             for t in record.turns])
            conn.execute(_ADMITTED_DONE_SQL, (ADMITTED_PREFIX + record.call_id,))
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return inserted

    def _rollback(self) -> None:
        # after a full disk or an I/O error SQLite may have rolled back already; the original
        # error is the one worth raising, not "no transaction is active"
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def write_event(
        self,
        kind: str,
        *,
        component: str,
        detail: str,
        ts: float,
        event_id: str | None = None,
    ) -> bool:
        """Commit one event; ``True`` if new. Pass the same ``event_id`` when retrying."""
        cur = self._conn.execute(
            _EVENT_SQL, (event_id or uuid.uuid4().hex, ts, kind, self._scrub(component),
                         self._scrub(detail))
        )
        return cur.rowcount == 1

    def open_admissions(self, since: float) -> list[str]:
        """Details of the admissions journaled since ``since`` whose call has no record."""
        rows = self._conn.execute(_OPEN_ADMISSIONS_SQL, (
            EventKind.CALL_ADMITTED, since, len(ADMITTED_PREFIX) + 1)).fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        """Close the connection; the last one to close checkpoints and removes the WAL."""
        try:
            self._conn.close()
        finally:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __enter__(self) -> CallStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call_row(self, r: CallRecord) -> tuple[object, ...]:
        return (
            r.call_id, r.direction.value, r.started_at, r.ended_at, r.caller_masked,
            r.outcome.value, r.end_reason.value, r.node_id, ",".join(r.providers_used),
            int(r.fallback_used), r.setup_s, int(r.warm_start), r.error, r.recording_path,
            len(r.turns), self._clock(),
        )

    def _turn_row(self, call_id: str, t: TurnTimings) -> tuple[object, ...]:
        keep = self._store_transcripts
        return (
            call_id, t.index, t.ended_speaking_at, t.end_of_turn_s, t.stt_s, t.llm_ttft_s,
            t.tts_ttfb_s, t.e2e_s, t.stt_provider, t.llm_provider, t.tts_provider,
            int(t.fallback_used), int(t.interrupted),
            t.user_text if keep else None, t.agent_text if keep else None,
        )
