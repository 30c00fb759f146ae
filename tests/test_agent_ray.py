"""The appointment book through the store writer actor: what the tools see in the cluster."""

from __future__ import annotations

import uuid
from datetime import date, time
from pathlib import Path

import pytest

from voice_ai.config import Settings
from voice_ai.store.appointments import Appointment, SlotTakenError
from voice_ai.store.schema import open_readonly

pytestmark = pytest.mark.ray


async def test_bookings_go_through_the_writer_and_refusals_arrive_unwrapped(
    ray_session: None, tmp_path: Path
) -> None:
    import ray

    from actors.appointments_client import AppointmentsClient
    from actors.store_writer import ensure_store_writer

    settings = Settings(db_path=tmp_path / "voice_ai.db", data_dir=tmp_path)
    name = f"store_writer_{uuid.uuid4().hex[:6]}"
    writer = ensure_store_writer(settings, name=name)
    try:
        await writer.pid.remote()  # started (a running system's writer always is)
        book = AppointmentsClient(name=name)  # found by name, as a call actor finds it
        tue = date(2026, 12, 1)
        await book.book(Appointment(day=tue, start=time(10, 0), service="check-up",
                                    caller_name="Anna Smith", call_id="c1"))
        with pytest.raises(SlotTakenError):
            await book.book(Appointment(day=tue, start=time(10, 0), service="filling"))
        assert [a.caller_name for a in await book.booked_on(tue)] == ["Anna Smith"]
        conn = open_readonly(settings.db_path)  # the row is on disk, where reports read it
        try:
            rows = conn.execute("SELECT day, start, service, status FROM appointments").fetchall()
        finally:
            conn.close()
        assert rows == [("2026-12-01", "10:00", "check-up", "booked")]
    finally:
        ray.kill(writer, no_restart=True)
