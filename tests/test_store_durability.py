"""Durability: the store writer is killed with SIGKILL while several actors write through it.

Afterwards every acknowledged record is in the database exactly once, PRAGMA integrity_check
says ok, and the restarted writer carries on. Records sent while it was down were retried by
``StoreClient`` and acknowledged late, not dropped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
import ray

from actors.store_writer import StoreClient, ensure_store_writer
from tests.test_store import make_call, make_turn
from voice_ai.config import load_settings

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SENDERS = 3
TASKS_PER_SENDER = 4
RECORDS_PER_TASK = 12  # 144 records in all


@ray.remote(num_cpus=0)
class RecordSender:
    """Stands in for call actors: several calls ending at once, each awaiting its ack."""

    async def send(self, writer_name: str, prefix: str, tasks: int, per_task: int) -> list[str]:
        client = StoreClient(name=writer_name, deadline_s=45.0)

        async def one_task(t: int) -> list[str]:
            acked = []
            for i in range(per_task):
                call_id = f"{prefix}-{t}-{i}"
                turns = tuple(make_turn(k, 1_780_000_000.0 + k) for k in range(3))
                await client.write_call(make_call(call_id, turns=turns))
                acked.append(call_id)  # only once the writer has committed it
            return acked

        done = await asyncio.gather(*(one_task(t) for t in range(tasks)))
        return [cid for part in done for cid in part]


def count_calls(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM calls").fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()


def test_sigkill_of_the_writer_loses_no_acknowledged_record(
    ray_session: None, tmp_path: Path
) -> None:
    db = tmp_path / "voice_ai.db"
    name = f"store_writer_{uuid.uuid4().hex[:8]}"
    writer = ensure_store_writer(load_settings(db_path=db), name=name)
    first_pid = ray.get(writer.pid.remote(), timeout=60)
    senders = [RecordSender.remote() for _ in range(SENDERS)]  # type: ignore[attr-defined]
    refs = [s.send.remote(name, f"s{n}", TASKS_PER_SENDER, RECORDS_PER_TASK)
            for n, s in enumerate(senders)]
    total = SENDERS * TASKS_PER_SENDER * RECORDS_PER_TASK

    deadline = time.monotonic() + 60
    while count_calls(db) < total // 4:
        assert time.monotonic() < deadline, "writes did not start"
        time.sleep(0.02)
    os.kill(first_pid, signal.SIGKILL)
    at_kill = count_calls(db)

    acked = [cid for part in ray.get(refs, timeout=90) for cid in part]
    assert at_kill < total, "the kill came too late to test anything"
    assert len(acked) == total == len(set(acked))

    conn = sqlite3.connect(db)
    try:
        stored = [r[0] for r in conn.execute("SELECT call_id FROM calls")]
        turns = conn.execute("SELECT count(*) FROM turns").fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    assert sorted(stored) == sorted(acked)  # every acknowledged record, none duplicated
    assert turns == 3 * total
    assert integrity == [("ok",)]

    # The same named writer came back in a new process and carries on.
    assert ray.get(writer.pid.remote(), timeout=60) != first_pid
    client = StoreClient(name=name, deadline_s=30.0)
    assert asyncio.run(client.write_call(make_call("after-restart"))) is True
    assert asyncio.run(client.write_call(make_call("after-restart"))) is False
    assert count_calls(db) == total + 1
    for actor in (*senders, writer):
        ray.kill(actor, no_restart=True)
