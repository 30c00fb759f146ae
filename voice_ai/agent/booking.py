"""The port the agent's tools book through, and its in-process implementations.

In the cluster the book is the store writer actor (``actors.store_writer.AppointmentsClient``);
in tests ``InMemoryAppointmentBook``; in one process over a SQLite file (the eval without Ray)
``LocalAppointmentBook``. All raise the store's ``SlotTakenError`` /
``AppointmentNotFoundError``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import date, time
from pathlib import Path
from typing import Any, Protocol

from voice_ai.store.appointments import (
    Appointment,
    AppointmentNotFoundError,
    AppointmentStatus,
    AppointmentStore,
    SlotTakenError,
    appointments_between,
)
from voice_ai.store.schema import open_writer

__all__ = ["AppointmentBook", "InMemoryAppointmentBook", "LocalAppointmentBook"]


class AppointmentBook(Protocol):
    async def booked_on(self, day: date) -> list[Appointment]: ...

    async def book(self, appointment: Appointment) -> Appointment: ...

    async def cancel(self, day: date, start: time) -> Appointment: ...

    async def move(self, day: date, start: time, new_day: date, new_start: time
                   ) -> Appointment: ...


class InMemoryAppointmentBook:
    """A dict of appointments with the store's rules (one booked appointment per slot)."""

    def __init__(self) -> None:
        self.rows: dict[str, Appointment] = {}

    def _at(self, day: date, start: time) -> Appointment | None:
        return next((a for a in self.rows.values() if a.day == day and a.start == start
                     and a.status is AppointmentStatus.BOOKED), None)

    async def booked_on(self, day: date) -> list[Appointment]:
        return sorted((a for a in self.rows.values()
                       if a.day == day and a.status is AppointmentStatus.BOOKED),
                      key=lambda a: a.start)

    async def book(self, appointment: Appointment) -> Appointment:
        if self._at(appointment.day, appointment.start) is not None:
            raise SlotTakenError(f"{appointment.day} {appointment.start:%H:%M} is taken")
        stored = replace(appointment, appointment_id=appointment.appointment_id
                         or uuid.uuid4().hex[:12], status=AppointmentStatus.BOOKED)
        self.rows[stored.appointment_id] = stored
        return stored

    async def cancel(self, day: date, start: time) -> Appointment:
        current = self._at(day, start)
        if current is None:
            raise AppointmentNotFoundError(f"no appointment on {day} at {start:%H:%M}")
        cancelled = replace(current, status=AppointmentStatus.CANCELLED)
        self.rows[current.appointment_id] = cancelled
        return cancelled

    async def move(self, day: date, start: time, new_day: date, new_start: time
                   ) -> Appointment:
        current = self._at(day, start)
        if current is None:
            raise AppointmentNotFoundError(f"no appointment on {day} at {start:%H:%M}")
        if self._at(new_day, new_start) is not None:
            raise SlotTakenError(f"{new_day} {new_start:%H:%M} is taken")
        moved = replace(current, day=new_day, start=new_start)
        self.rows[current.appointment_id] = moved
        return moved


class LocalAppointmentBook:
    """The store's ``AppointmentStore`` on a SQLite file, in this process (no Ray).

    Each call runs in a thread, one at a time, so the event loop never waits on the disk."""

    def __init__(self, db_path: Path) -> None:
        open_writer(db_path).close()  # creates and migrates; each call opens its own
        self._db_path = db_path
        self._lock = asyncio.Lock()

    async def _run(self, fn: str, *args: object) -> Any:
        async with self._lock:
            return await asyncio.to_thread(self._call, fn, *args)

    def _call(self, fn: str, *args: object) -> Any:
        import sqlite3

        conn = sqlite3.connect(self._db_path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            return getattr(AppointmentStore(conn), fn)(*args)
        finally:
            conn.close()

    async def booked_on(self, day: date) -> list[Appointment]:
        found: list[Appointment] = await self._run("booked_on", day)
        return found

    async def book(self, appointment: Appointment) -> Appointment:
        booked: Appointment = await self._run("book", appointment)
        return booked

    async def cancel(self, day: date, start: time) -> Appointment:
        cancelled: Appointment = await self._run("cancel", day, start)
        return cancelled

    async def move(self, day: date, start: time, new_day: date, new_start: time
                   ) -> Appointment:
        moved: Appointment = await self._run("move", day, start, new_day, new_start)
        return moved

    async def every_appointment(self) -> list[Appointment]:
        """Every row, any status (the eval checks what the tools left behind)."""
        async with self._lock:
            return await asyncio.to_thread(self._every)

    def _every(self) -> list[Appointment]:
        import sqlite3

        conn = sqlite3.connect(self._db_path, isolation_level=None)
        try:
            return appointments_between(conn, 0.0, float("inf"))
        finally:
            conn.close()
