"""The business profile (``agent.yaml``): what the receptionist knows and may do.

Loaded and validated once at start (``load_profile``); every problem becomes one line of a
``ProfileError`` that names the field and what it accepts, so ``voice-ai run`` exits 2 with
the list before Ray starts. The result is frozen and travels to the actors as it is.

    name: Bright Dental
    hours: {monday: "08:30-17:30", ..., sunday: closed}
    holidays: [{date: 2026-12-25, name: Christmas Day}]
    services: [{name: check-up, price: 45, aliases: [checkup]}]
    booking: {slot_minutes: 30, lunch_break: "12:30-13:30", days_ahead: 21}
    transfer_number: "+441134960000"        # never logged in full
"""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from voice_ai.errors import ConfigError

__all__ = [
    "WEEKDAYS",
    "BookingRules",
    "BusinessProfile",
    "FaqEntry",
    "Holiday",
    "OpeningHours",
    "ProfileError",
    "Service",
    "load_profile",
]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{5,20}$")


class ProfileError(ConfigError):
    """``agent.yaml`` cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_span(text: str) -> tuple[time, time]:
    """``"08:30-17:30"`` -> (08:30, 17:30); ``ValueError`` naming the expected form."""
    m = _SPAN.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a time span HH:MM-HH:MM or 'closed'")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{text!r} is not a time span HH:MM-HH:MM (hours 0-24, minutes 0-59)")
    start, end = time(h1, m1), time(23, 59) if h2 == 24 else time(h2, m2)
    if end <= start:
        raise ValueError(f"{text!r} ends before it starts")
    return start, end


class OpeningHours(BaseModel):
    """One weekday: ``open``/``close`` or closed (both ``None``)."""

    model_config = ConfigDict(frozen=True)

    open: time | None = None
    close: time | None = None

    @property
    def closed(self) -> bool:
        return self.open is None


class Holiday(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date
    name: str = Field("public holiday", min_length=1, max_length=80)


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=80)
    price: float = Field(ge=0)
    price_note: str = Field("", max_length=40)
    """Said before the price, e.g. "from"."""
    duration_min: int = Field(30, ge=5, le=480)
    aliases: tuple[str, ...] = ()


class FaqEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(min_length=1, max_length=200)
    keywords: tuple[str, ...] = Field(min_length=1)
    """Words or phrases that mark a caller's question as this one (any of them)."""
    answer: str = Field(min_length=1, max_length=400)


class BookingRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slot_minutes: int = Field(30, ge=5, le=240)
    days_ahead: int = Field(21, ge=1, le=365)
    """How far ahead callers may book."""
    lunch_break: tuple[time, time] | None = None
    """No appointments in this span, e.g. ``"12:30-13:30"``."""
    default_service: str = "check-up"

    @field_validator("lunch_break", mode="before")
    @classmethod
    def _span(cls, v: Any) -> Any:
        return parse_span(v) if isinstance(v, str) else v


class BusinessProfile(BaseModel):
    """Everything the agent says about the business comes from here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    agent_name: str = Field("the receptionist", min_length=1, max_length=40)
    language: str = Field("en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    timezone: str = "UTC"
    greeting: str = Field(min_length=1, max_length=300)
    address: str = Field(min_length=1, max_length=200)
    directions: str = Field("", max_length=400)
    hours: dict[str, OpeningHours]
    holidays: tuple[Holiday, ...] = ()
    currency: str = Field("pounds", min_length=1, max_length=20)
    services: tuple[Service, ...] = Field(min_length=1)
    faq: tuple[FaqEntry, ...] = ()
    booking: BookingRules = Field(default_factory=lambda: BookingRules.model_validate({}))
    transfer_number: str

    @field_validator("hours", mode="before")
    @classmethod
    def _hours(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError("must map weekdays (monday..sunday) to HH:MM-HH:MM or closed")
        out: dict[str, Any] = {}
        for day, span in v.items():
            key = str(day).strip().lower()
            if key not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} (expected monday..sunday)")
            if span is None or str(span).strip().lower() == "closed":
                out[key] = OpeningHours()
            else:
                try:
                    opens, closes = parse_span(str(span))
                except ValueError as e:
                    raise ValueError(f"{key}: {e}") from None
                out[key] = OpeningHours(open=opens, close=closes)
        missing = [d for d in WEEKDAYS if d not in out]
        if missing:
            raise ValueError(f"missing weekday(s) {', '.join(missing)} (say 'closed' for none)")
        return out

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (e.g. Europe/London)") from None
        return v

    @field_validator("transfer_number")
    @classmethod
    def _number(cls, v: str) -> str:
        if not _PHONE.match(v.strip()):
            raise ValueError("must be a phone number, digits with an optional leading +")
        return v.strip()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def transfer_number_masked(self) -> str:
        """What logs and notes may show: the last three digits only."""
        digits = re.sub(r"\D", "", self.transfer_number)
        return f"***{digits[-3:]}"

    def hours_on(self, weekday: int) -> OpeningHours:
        return self.hours[WEEKDAYS[weekday]]

    def holiday_on(self, day: date) -> Holiday | None:
        return next((h for h in self.holidays if h.date == day), None)

    def service(self, name: str) -> Service | None:
        """The service called ``name`` or one of its aliases (case-insensitive)."""
        key = name.strip().lower()
        for s in self.services:
            if key == s.name.lower() or key in (a.lower() for a in s.aliases):
                return s
        return None


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _describe(e: ValidationError, path: Path) -> list[str]:
    lines = []
    for err in e.errors():
        where = _location(err["loc"])
        if err["type"] == "missing":
            lines.append(f"{path}: {where} is missing")
        elif err["type"] == "extra_forbidden":
            lines.append(f"{path}: {where} is not a known field")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {where}: {msg}")
    return lines


def load_profile(path: Path | str) -> BusinessProfile:
    """Read and validate ``agent.yaml``; raise ``ProfileError`` with one line per problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError([f"agent profile not found: {path} (set AGENT_PROFILE_PATH)"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError([f"agent profile {path} cannot be read: {e}"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ProfileError([f"agent profile {path} is not valid YAML{where}"]) from None
    if not isinstance(raw, dict):
        raise ProfileError([f"agent profile {path} must be a mapping (name, hours, ...)"])
    try:
        profile = BusinessProfile.model_validate(raw)
    except ValidationError as e:
        raise ProfileError(_describe(e, path)) from None
    problems = _cross_check(profile, path)
    if problems:
        raise ProfileError(problems)
    return profile


def _cross_check(p: BusinessProfile, path: Path) -> list[str]:
    problems = []
    if p.service(p.booking.default_service) is None:
        problems.append(f"{path}: booking.default_service: {p.booking.default_service!r} is "
                        "not one of the services")
    names = [s.name.lower() for s in p.services]
    if len(set(names)) != len(names):
        problems.append(f"{path}: services: two services have the same name")
    if all(h.closed for h in p.hours.values()):
        problems.append(f"{path}: hours: closed every day")
    return problems
