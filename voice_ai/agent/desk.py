"""The front desk: opening hours, free slots, booking, from the profile and the book.

Every answer is a short sentence a caller can hear as it is (the local engine speaks it; a
cloud LLM may rephrase it). A request that cannot be met raises ``DeskError`` whose message is
such a sentence too ("Sorry, we are closed on Sunday ..."), so the tools can hand it to the
LLM as the tool's error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from voice_ai.agent.booking import AppointmentBook
from voice_ai.agent.profile import WEEKDAYS, BusinessProfile
from voice_ai.agent.when import (
    PARTS_OF_DAY,
    on_day,
    parse_time,
    resolve_day,
    say_date,
    say_list,
    say_time,
)
from voice_ai.store.appointments import (
    Appointment,
    AppointmentNotFoundError,
    SlotTakenError,
)

__all__ = ["DeskError", "FrontDesk", "week_summary"]

MAX_SLOTS_SAID = 4


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class DeskError(ValueError):
    """A request the desk cannot meet; the message is what to tell the caller."""


def _hours_phrase(profile: BusinessProfile, weekday: int) -> str:
    h = profile.hours_on(weekday)
    if h.closed or h.open is None or h.close is None:
        return "closed"
    return f"open from {say_time(h.open)} to {say_time(h.close)}"


def week_summary(profile: BusinessProfile) -> str:
    """"Monday to Friday 8:30 am to 5:30 pm, ..." grouping equal consecutive days."""
    groups: list[tuple[int, int, str]] = []
    for i in range(7):
        phrase = _hours_phrase(profile, i)
        if groups and groups[-1][2] == phrase and groups[-1][1] == i - 1:
            groups[-1] = (groups[-1][0], i, phrase)
        else:
            groups.append((i, i, phrase))
    parts = []
    for first, last, phrase in groups:
        join = " and " if last == first + 1 else " to "
        days = WEEKDAYS[first].capitalize() if first == last else (
            f"{WEEKDAYS[first].capitalize()}{join}{WEEKDAYS[last].capitalize()}")
        parts.append(f"{days} {phrase.removeprefix('open ')}")
    return "We are open " + ", ".join(parts) + "."


class FrontDesk:
    """One call's view of the business. ``today`` gives the business's local date."""

    def __init__(self, profile: BusinessProfile, book: AppointmentBook, *,
                 now: Callable[[], datetime], call_id: str = "") -> None:
        self.profile = profile
        self.book_port = book
        self._now = now
        self.call_id = call_id

    # --- reading ----------------------------------------------------------------------------
    @property
    def today(self) -> date:
        return self._now().date()

    def day(self, value: str) -> date:
        try:
            d = resolve_day(value, self.today)
        except ValueError as e:
            raise DeskError(str(e)) from None
        if d < self.today:
            raise DeskError(f"{say_date(d, self.today)} has already passed.")
        return d

    def clock_time(self, value: str) -> time:
        try:
            return parse_time(value)
        except ValueError as e:
            raise DeskError(str(e)) from None

    def opening_hours(self, day: str = "") -> str:
        if not day.strip():
            return week_summary(self.profile)
        d = self.day(day)
        holiday = self.profile.holiday_on(d)
        when = _cap(on_day(d, self.today))
        if holiday is not None:
            return f"{when} we are closed for {holiday.name}."
        phrase = _hours_phrase(self.profile, d.weekday())
        if phrase == "closed":
            return f"Sorry, we are closed on {d.strftime('%A')}s."
        return f"{when} we are {phrase}."

    def _slots(self, d: date) -> list[time]:
        """Every bookable start on ``d``: opening hours on the slot grid, minus the break."""
        h = self.profile.hours_on(d.weekday())
        if h.closed or h.open is None or h.close is None or self.profile.holiday_on(d):
            return []
        rules = self.profile.booking
        step = timedelta(minutes=rules.slot_minutes)
        at = datetime.combine(d, h.open)
        end = datetime.combine(d, h.close)
        now = self._now().replace(tzinfo=None)
        slots = []
        while at + step <= end:
            brk = rules.lunch_break
            in_break = brk is not None and brk[0] <= at.time() < brk[1]
            if not in_break and at > now:
                slots.append(at.time())
            at += step
        return slots

    def _bookable_day(self, d: date) -> None:
        when = say_date(d, self.today)
        if d > self.today + timedelta(days=self.profile.booking.days_ahead):
            raise DeskError(f"I can only book up to {self.profile.booking.days_ahead} days "
                            f"ahead, and {when} is further out.")
        holiday = self.profile.holiday_on(d)
        if holiday is not None:
            raise DeskError(f"We are closed on {when} for {holiday.name}.")
        if self.profile.hours_on(d.weekday()).closed:
            raise DeskError(f"Sorry, we are closed on {d.strftime('%A')}s.")

    async def free(self, d: date, part_of_day: str = "") -> list[time]:
        taken = {a.start for a in await self.book_port.booked_on(d)}
        free = [s for s in self._slots(d) if s not in taken]
        if part_of_day:
            lo, hi = PARTS_OF_DAY[part_of_day]
            free = [s for s in free if lo <= s < hi]
        return free

    async def free_slots(self, day: str, part_of_day: str = "") -> str:
        d = self.day(day)
        self._bookable_day(d)
        part = part_of_day.strip().lower()
        if part and part not in PARTS_OF_DAY:
            raise DeskError(f"I did not understand {part_of_day!r}; say morning, afternoon "
                            "or evening.")
        free = await self.free(d, part)
        when = on_day(d, self.today)
        span = f" in the {part}" if part else ""
        if not free:
            return f"Sorry, there are no free times {when}{span}. Would another day suit you?"
        said = say_list([say_time(s) for s in free[:MAX_SLOTS_SAID]], "or")
        return f"{_cap(when)}{span} I have {said} free. Which time would suit you?"

    # --- changing ---------------------------------------------------------------------------
    async def _check_slot(self, d: date, t: time) -> None:
        self._bookable_day(d)
        if t not in self._slots(d):
            h = self.profile.hours_on(d.weekday())
            brk = self.profile.booking.lunch_break
            if h.open is not None and h.close is not None and not (h.open <= t < h.close):
                raise DeskError(f"We are only open from {say_time(h.open)} to "
                                f"{say_time(h.close)} on {d.strftime('%A')}s.")
            if brk is not None and brk[0] <= t < brk[1]:
                raise DeskError(f"We do not book between {say_time(brk[0])} and "
                                f"{say_time(brk[1])}; that is our lunch break.")
            if datetime.combine(d, t) <= self._now().replace(tzinfo=None):
                raise DeskError(f"{say_time(t)} today has already passed.")
            raise DeskError(f"Appointments start every {self.profile.booking.slot_minutes} "
                            "minutes, on the hour or half past.")

    async def _nearest_free(self, d: date, t: time) -> str:
        free = await self.free(d)
        if not free:
            return "There are no other free times that day."
        minutes = t.hour * 60 + t.minute
        near = sorted(free, key=lambda s: abs(s.hour * 60 + s.minute - minutes))[:2]
        return f"The nearest free times are {say_list([say_time(s) for s in sorted(near)])}."

    async def book(self, day: str, time_: str, service: str = "", caller_name: str = "") -> str:
        d, t = self.day(day), self.clock_time(time_)
        name = service.strip() or self.profile.booking.default_service
        svc = self.profile.service(name)
        if svc is None:
            offered = ", ".join(s.name for s in self.profile.services)
            raise DeskError(f"We do not offer {service!r}; we offer {offered}.")
        await self._check_slot(d, t)
        try:
            await self.book_port.book(Appointment(
                day=d, start=t, service=svc.name, duration_min=svc.duration_min,
                caller_name=caller_name.strip()[:80], call_id=self.call_id))
        except SlotTakenError:
            raise DeskError(f"Sorry, {say_time(t)} {on_day(d, self.today)} is already "
                            f"taken. {await self._nearest_free(d, t)}") from None
        return f"You are booked in for a {svc.name} {on_day(d, self.today)} at {say_time(t)}."

    async def cancel(self, day: str, time_: str) -> str:
        d, t = self.day(day), self.clock_time(time_)
        try:
            await self.book_port.cancel(d, t)
        except AppointmentNotFoundError:
            raise DeskError(f"I cannot find an appointment {on_day(d, self.today)} at "
                            f"{say_time(t)}.") from None
        return f"Your appointment {on_day(d, self.today)} at {say_time(t)} is cancelled."

    async def move(self, day: str, time_: str, new_day: str, new_time: str) -> str:
        d, t = self.day(day), self.clock_time(time_)
        nd, nt = self.day(new_day), self.clock_time(new_time)
        await self._check_slot(nd, nt)
        try:
            await self.book_port.move(d, t, nd, nt)
        except AppointmentNotFoundError:
            raise DeskError(f"I cannot find an appointment {on_day(d, self.today)} at "
                            f"{say_time(t)}.") from None
        except SlotTakenError:
            raise DeskError(f"Sorry, {say_time(nt)} {on_day(nd, self.today)} is already "
                            f"taken. {await self._nearest_free(nd, nt)}") from None
        return f"Done: your appointment is moved to {say_date(nd, self.today)} at {say_time(nt)}."
