"""The receptionist's appointment book in the cluster: the store writer actor, via Ray.

``AppointmentsClient`` implements ``voice_ai.agent.booking.AppointmentBook``. Each request has
a deadline (``timeout_s``); the book's own refusals (``SlotTakenError``,
``AppointmentNotFoundError``) come back as themselves, not wrapped in Ray's error, so the
tools can tell "taken" from "the store is down" (which they turn into an apology and an offer
of a person). No retry: a booking the caller is waiting on must not take longer than a turn.
"""

from __future__ import annotations

import asyncio
from datetime import date, time
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayTaskError

from actors.store_writer import WRITER_NAME
from voice_ai.store.appointments import Appointment

__all__ = ["AppointmentsClient"]


class AppointmentsClient:
    def __init__(self, writer: ActorHandle[Any] | None = None, *, name: str = WRITER_NAME,
                 namespace: str | None = None, timeout_s: float = 5.0) -> None:
        self._writer = writer
        self._name = name
        self._namespace = namespace
        self._timeout_s = timeout_s

    async def _call(self, method: str, *args: object) -> Any:
        if self._writer is None:  # a GCS lookup blocks: off the event loop
            self._writer = await asyncio.to_thread(ray.get_actor, self._name,
                                                   namespace=self._namespace)
        try:
            return await asyncio.wait_for(getattr(self._writer, method).remote(*args),
                                          timeout=self._timeout_s)
        except RayTaskError as e:
            cause = e.cause
            raise cause if isinstance(cause, Exception) else e from None

    async def booked_on(self, day: date) -> list[Appointment]:
        found: list[Appointment] = await self._call("appointments_on", day)
        return found

    async def book(self, appointment: Appointment) -> Appointment:
        booked: Appointment = await self._call("book_appointment", appointment)
        return booked

    async def cancel(self, day: date, start: time) -> Appointment:
        cancelled: Appointment = await self._call("cancel_appointment", day, start)
        return cancelled

    async def move(self, day: date, start: time, new_day: date, new_start: time
                   ) -> Appointment:
        moved: Appointment = await self._call("move_appointment", day, start, new_day, new_start)
        return moved
