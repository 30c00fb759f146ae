"""``StoreWriterCore``: the store writer's behaviour, without Ray (``actors/store_writer.py``).

It opens the ``CallStore`` on first use, not at construction: a database that cannot be opened
(a bad restore, a full disk, a restore in progress) must not kill the writer process, only
fail the writes until it is fixed. Every problem comes back as a ``WriteOutcome`` naming it;
after anything but a busy lock the connection is dropped and opened afresh on the next write,
so a fixed or restored file is picked up without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from voice_ai.records import CallRecord
from voice_ai.store.call_store import CallStore
from voice_ai.store.outcome import StoreProblem, WriteOutcome, classify_store_error

__all__ = ["WRITER_BUSY_TIMEOUT_MS", "StoreWriterCore"]

logger = logging.getLogger("voice_ai.store")
# How long one write waits for a lock held by someone else (a VACUUM, a backup step) before it
# answers LOCKED. Short, so the client's backoff, not a blocked writer, spans a long lock, and
# the writer keeps answering health checks meanwhile.
WRITER_BUSY_TIMEOUT_MS = 2_000


class StoreWriterCore:
    def __init__(self, db_path: Path, *, store_transcripts: bool = False,
                 scrub: Callable[[str], str] | None = None,
                 opener: Callable[[Path, bool], CallStore] | None = None) -> None:
        self.db_path = db_path
        self._store_transcripts = store_transcripts
        self._opener = opener or (lambda p, t: CallStore(
            p, store_transcripts=t, busy_timeout_ms=WRITER_BUSY_TIMEOUT_MS, scrub=scrub))
        self._store: CallStore | None = None
        self.failures: dict[StoreProblem, int] = {}

    def write_call(self, record: CallRecord) -> WriteOutcome:
        try:
            return WriteOutcome.stored(self._open().write_call(record))
        except Exception as e:
            return self._failed(e, "call record", record.call_id)

    def write_event(self, kind: str, component: str, detail: str, ts: float,
                    event_id: str | None = None) -> WriteOutcome:
        try:
            inserted = self._open().write_event(kind, component=component, detail=detail, ts=ts,
                                                event_id=event_id)
            return WriteOutcome.stored(inserted)
        except Exception as e:
            return self._failed(e, "event", event_id or "")

    def open_admissions(self, since: float) -> list[str]:
        """Journaled admissions since ``since`` whose call has no record (their details, see
        ``voice_ai.calls.journal``). Raises on a store problem: the caller has a deadline."""
        try:
            return self._open().open_admissions(since)
        except Exception:
            self.close()
            raise

    @property
    def is_open(self) -> bool:
        return self._store is not None

    def close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            try:
                store.close()
            except Exception:  # closing a broken connection: nothing more to lose
                logger.warning("store connection did not close cleanly")

    def _open(self) -> CallStore:
        if self._store is None:
            self._store = self._opener(self.db_path, self._store_transcripts)
        return self._store

    def _failed(self, error: Exception, what: str, key: str) -> WriteOutcome:
        problem = classify_store_error(error)
        self.failures[problem] = self.failures.get(problem, 0) + 1
        logger.error("store write failed", extra={
            "what": what, "id": key, "problem": problem.value,
            "error": f"{type(error).__name__}: {error}"[:300]})
        if problem is not StoreProblem.LOCKED:
            self.close()  # open afresh next time: the file may have been fixed or replaced
        return WriteOutcome.failed(problem, f"{type(error).__name__}: {error}")
