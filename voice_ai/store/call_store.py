"""``CallStore``: writes call records and events to the SQLite store.

One ``CallStore`` per process that writes; in the cluster that is the single ``StoreWriter``
actor on the head node (``actors/store_writer.py``). Every write is one transaction committed
with ``synchronous=FULL`` before the method returns, so a ``True``/``False`` answer means the
record is on disk. Writes are idempotent by ``call_id`` (and by ``event_id`` for events): a
client that retries after losing an acknowledgement never creates a duplicate.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from voice_ai.records import CallRecord, TurnTimings
from voice_ai.store.schema import open_writer

__all__ = ["CallStore", "EventKind"]


class EventKind:
    """The event kinds the reports know about; other kinds are stored and listed as they are."""

    BREAKER = "breaker"
    ERROR = "error"
    REJECTION = "rejection"


_CALL_SQL = """
INSERT OR IGNORE INTO calls (
    call_id, direction, started_at, ended_at, caller_masked, outcome, end_reason, node_id,
    providers_used, fallback_used, setup_s, warm_start, error, recording_path, turn_count,
    written_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_TURN_SQL = """
INSERT INTO turns (
    call_id, turn_index, ended_speaking_at, end_of_turn_s, stt_s, llm_ttft_s, tts_ttfb_s, e2e_s,
    stt_provider, llm_provider, tts_provider, fallback_used, interrupted, user_text, agent_text
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_EVENT_SQL = """
INSERT OR IGNORE INTO events (event_id, ts, kind, component, detail) VALUES (?, ?, ?, ?, ?)
"""


class CallStore:
    """The write side of the store. Not thread-safe: one caller at a time (an actor is)."""

    def __init__(
        self,
        db_path: Path,
        *,
        store_transcripts: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db_path = db_path
        self._store_transcripts = store_transcripts
        self._clock = clock
        self._conn = open_writer(db_path)

    def write_call(self, record: CallRecord) -> bool:
        """Commit ``record`` and its turns; ``True`` if new, ``False`` if already stored."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(_CALL_SQL, self._call_row(record))
            inserted = cur.rowcount == 1
            if inserted:
                conn.executemany(_TURN_SQL, [self._turn_row(record.call_id, t)
                                             for t in record.turns])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return inserted

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
            _EVENT_SQL, (event_id or uuid.uuid4().hex, ts, kind, component, detail)
        )
        return cur.rowcount == 1

    def close(self) -> None:
        """Close the connection; the last one to close checkpoints and removes the WAL."""
        self._conn.close()

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
