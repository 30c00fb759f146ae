"""Appointments in the SQLite store: one booked appointment per slot, cancel and move."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from voice_ai.agent.booking import LocalAppointmentBook
from voice_ai.store.appointments import (
    Appointment,
    AppointmentNotFoundError,
    AppointmentStatus,
    SlotTakenError,
    appointments_between,
)
from voice_ai.store.schema import SCHEMA_VERSION, open_readonly

pytestmark = pytest.mark.unit

TUE, WED = date(2026, 12, 1), date(2026, 12, 2)


async def test_the_store_keeps_one_booking_per_slot(tmp_path: Path) -> None:
    db = tmp_path / "voice_ai.db"
    book = LocalAppointmentBook(db)
    first = await book.book(Appointment(day=TUE, start=time(10, 0), service="check-up",
                                        caller_name="Anna Smith", call_id="c1"))
    with pytest.raises(SlotTakenError):
        await book.book(Appointment(day=TUE, start=time(10, 0), service="filling"))
    other = await book.book(Appointment(day=TUE, start=time(10, 30), service="filling"))
    assert [a.start for a in await book.booked_on(TUE)] == [time(10, 0), time(10, 30)]

    with pytest.raises(SlotTakenError):  # moving onto a held slot leaves it where it was
        await book.move(TUE, time(10, 0), TUE, time(10, 30))
    moved = await book.move(TUE, time(10, 0), WED, time(9, 0))
    assert (moved.appointment_id, moved.day, moved.start) == (first.appointment_id, WED,
                                                               time(9, 0))
    cancelled = await book.cancel(TUE, time(10, 30))
    assert cancelled.appointment_id == other.appointment_id
    with pytest.raises(AppointmentNotFoundError):
        await book.cancel(TUE, time(10, 30))
    await book.book(Appointment(day=TUE, start=time(10, 30), service="check-up"))  # free again

    conn = open_readonly(db)  # what reports read: the rows, with status
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = appointments_between(conn, 0, 2e9)
    finally:
        conn.close()
    assert sorted((a.day.isoformat(), a.start.isoformat(), a.status.value) for a in rows) == [
        ("2026-12-01", "10:30:00", "booked"), ("2026-12-01", "10:30:00", "cancelled"),
        ("2026-12-02", "09:00:00", "booked")]
    assert {a.caller_name for a in rows if a.status is AppointmentStatus.BOOKED} == {
        "Anna Smith", ""}
