"""Secrets and full numbers never reach the store or its backups: CallStore scrubs what it
writes with the log scrubber (numbers masked, keys and tokens redacted)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from voice_ai.observability.scrub import Scrubber
from voice_ai.records import CallDirection, CallRecord, EndReason, TurnTimings
from voice_ai.store import CallStore
from voice_ai.store.backup import backup_database

pytestmark = pytest.mark.unit

NUMBER = "+15550100067"
SECRETS = ("sk-live-abcdefghijklmnopqrstuv", "dg-configured-key-123456",
           "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ")


def _leaks(path: Path) -> list[str]:
    raw = path.read_bytes()
    found = [s for s in SECRETS if s.encode() in raw]
    found += [d for d in ("5550100067", "5550100068", "555 010 0068") if d.encode() in raw]
    return found


def test_records_events_and_backups_hold_no_secret_and_no_full_number(tmp_path: Path) -> None:
    db = tmp_path / "data" / "voice_ai.db"
    db.parent.mkdir()
    store = CallStore(db, store_transcripts=True, scrub=Scrubber([SECRETS[1]]))
    turn = TurnTimings(index=0, ended_speaking_at=time.time(), e2e_s=0.9,
                       user_text="call me back on 555 010 0068 or 5550100068 please",
                       agent_text=f"I will call {NUMBER}")
    record = CallRecord(
        call_id="c0ffee0000000001", direction=CallDirection.INBOUND, started_at=time.time(),
        ended_at=time.time(), end_reason=EndReason.ERROR, caller_masked=NUMBER,
        error=(f"APIStatusError: 401 {{\"error\": \"bad key {SECRETS[0]}\"}} "
               f"dialing sip:15550100067@trunk with {SECRETS[1]} Bearer {SECRETS[2]}"),
        recording_path=f"data/recordings/{NUMBER}.wav", turns=(turn,))
    assert store.write_call(record)
    store.write_event("error", component="stt", ts=time.time(),
                      detail=f"deepgram_api_key={SECRETS[1]} caller {NUMBER}")
    store.close()
    backup = backup_database(db, tmp_path / "backups", retention_days=14)

    for path in (db, backup.path, backup.latest):
        assert _leaks(path) == [], path
    import sqlite3

    with sqlite3.connect(db) as conn:
        caller, error = conn.execute("SELECT caller_masked, error FROM calls").fetchone()
        detail = conn.execute("SELECT detail FROM events").fetchone()[0]
    assert caller == "+1********67"
    assert error.startswith("APIStatusError: 401") and "[REDACTED]" in error
    assert "[REDACTED]" in detail and "+1********67" in detail
