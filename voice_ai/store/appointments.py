"""Appointments the phone agent booked: one row each in the ``appointments`` table.

``AppointmentStore`` is the write (and small read) side the store writer actor hosts next to
``CallStore``, on the same connection rules: one transaction per change, committed before the
method returns. One booked appointment per day and start time (a partial unique index), so two
callers who ask for the same slot at once cannot both get it: the second sees
``SlotTakenError``. Days are the business's local dates; times ``HH:MM``.
"""

from __future__ import annotations

import sqlite3
import time as _time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, time
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from voice_ai.store.schema import open_writer

__all__ = [
    "Appointment",
    "AppointmentWriter",
    "AppointmentNotFoundError",
    "AppointmentStatus",
    "AppointmentStore",
    "SlotTakenError",
    "appointments_between",
]


_T = TypeVar("_T")


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"


class SlotTakenError(Exception):
    """Someone already holds that day and time."""


class AppointmentNotFoundError(Exception):
    """No booked appointment at that day and time."""


@dataclass(frozen=True, slots=True)
class Appointment:
    day: date
    start: time
    service: str
    duration_min: int = 30
    caller_name: str = ""
    call_id: str = ""
    status: AppointmentStatus = AppointmentStatus.BOOKED
    appointment_id: str = ""
    created_at: float = 0.0

    def row(self) -> tuple[object, ...]:
        return (self.appointment_id, self.day.isoformat(), self.start.strftime("%H:%M"),
                self.duration_min, self.service, self.caller_name, self.call_id,
                self.status.value, self.created_at)


_COLUMNS = ("appointment_id, day, start, duration_min, service, caller_name, call_id, status, "
            "created_at")


def _from_row(r: tuple[object, ...]) -> Appointment:
    return Appointment(
        appointment_id=str(r[0]), day=date.fromisoformat(str(r[1])),
        start=time.fromisoformat(str(r[2])), duration_min=int(str(r[3])), service=str(r[4]),
        caller_name=str(r[5]), call_id=str(r[6]), status=AppointmentStatus(str(r[7])),
        created_at=float(str(r[8])),
    )


class AppointmentStore:
    """Appointments on a writer connection (``schema.open_writer``). Not thread-safe."""

    def __init__(self, conn: sqlite3.Connection,
                 clock: Callable[[], float] = _time.time) -> None:
        self._conn = conn
        self._clock = clock

    def book(self, appointment: Appointment) -> Appointment:
        """Insert a booked appointment; ``SlotTakenError`` if the slot is held."""
        now = self._clock()
        stored = replace(appointment, status=AppointmentStatus.BOOKED,
                         appointment_id=appointment.appointment_id or uuid.uuid4().hex[:12],
                         created_at=appointment.created_at or now)
        try:
            self._conn.execute(
                f"INSERT INTO appointments ({_COLUMNS}, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*stored.row(), now))
        except sqlite3.IntegrityError as e:
            if "appointments.appointment_id" in str(e):  # a retried request: already stored
                return self.get(stored.appointment_id) or stored
            raise SlotTakenError(f"{stored.day} {stored.start:%H:%M} is taken") from None
        return stored

    def cancel(self, day: date, start: time) -> Appointment:
        """Cancel the booked appointment at ``day`` ``start``."""
        current = self.booked_at(day, start)
        if current is None:
            raise AppointmentNotFoundError(f"no appointment on {day} at {start:%H:%M}")
        self._conn.execute(
            "UPDATE appointments SET status = ?, updated_at = ? WHERE appointment_id = ?",
            (AppointmentStatus.CANCELLED.value, self._clock(), current.appointment_id))
        return replace(current, status=AppointmentStatus.CANCELLED)

    def move(self, day: date, start: time, new_day: date, new_start: time) -> Appointment:
        """Move the appointment at ``day`` ``start``; ``SlotTakenError`` if the new slot is
        held (the appointment then stays where it was)."""
        current = self.booked_at(day, start)
        if current is None:
            raise AppointmentNotFoundError(f"no appointment on {day} at {start:%H:%M}")
        try:
            self._conn.execute(
                "UPDATE appointments SET day = ?, start = ?, updated_at = ? "
                "WHERE appointment_id = ?",
                (new_day.isoformat(), new_start.strftime("%H:%M"), self._clock(),
                 current.appointment_id))
        except sqlite3.IntegrityError:
            raise SlotTakenError(f"{new_day} {new_start:%H:%M} is taken") from None
        return replace(current, day=new_day, start=new_start)

    def booked_on(self, day: date) -> list[Appointment]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM appointments WHERE day = ? AND status = ? ORDER BY start",
            (day.isoformat(), AppointmentStatus.BOOKED.value)).fetchall()
        return [_from_row(r) for r in rows]

    def booked_at(self, day: date, start: time) -> Appointment | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM appointments WHERE day = ? AND start = ? AND status = ?",
            (day.isoformat(), start.strftime("%H:%M"), AppointmentStatus.BOOKED.value)
        ).fetchone()
        return _from_row(row) if row else None

    def get(self, appointment_id: str) -> Appointment | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM appointments WHERE appointment_id = ?", (appointment_id,)
        ).fetchone()
        return _from_row(row) if row else None


def appointments_between(conn: sqlite3.Connection, start: float, end: float
                         ) -> list[Appointment]:
    """Appointments created in ``[start, end)`` (unix s), for the reports; any status."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM appointments WHERE created_at >= ? AND created_at < ? "
        "ORDER BY day, start", (start, end)).fetchall()
    return [_from_row(r) for r in rows]


class AppointmentWriter:
    """``AppointmentStore`` on its own writer connection, opened on first use and dropped after
    a database problem (so a restored or repaired file is picked up), as the call writer does.

    The store writer actor hosts one next to its call records; a sync actor runs one method at
    a time, which is all SQLite's single writer needs."""

    def __init__(self, db_path: Path, *, busy_timeout_ms: int = 2_000) -> None:
        self.db_path = db_path
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None

    def _store(self) -> AppointmentStore:
        if self._conn is None:
            self._conn = open_writer(self.db_path, busy_timeout_ms=self._busy_timeout_ms)
        return AppointmentStore(self._conn)

    def _run(self, fn: Callable[[AppointmentStore], _T]) -> _T:
        try:
            return fn(self._store())
        except (SlotTakenError, AppointmentNotFoundError):
            raise
        except Exception:
            self.close()
            raise

    def book(self, appointment: Appointment) -> Appointment:
        return self._run(lambda s: s.book(appointment))

    def cancel(self, day: date, start: time) -> Appointment:
        return self._run(lambda s: s.cancel(day, start))

    def move(self, day: date, start: time, new_day: date, new_start: time) -> Appointment:
        return self._run(lambda s: s.move(day, start, new_day, new_start))

    def booked_on(self, day: date) -> list[Appointment]:
        return self._run(lambda s: s.booked_on(day))

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
