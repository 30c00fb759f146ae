"""Days and times as callers say them (and as speech-to-text writes them).

Two sides: ``find_day`` / ``find_time`` / ``find_part_of_day`` pull a day or a time out of a
sentence ("Thursday at half past two" -> ``"thursday"``, ``"14:30"``); ``resolve_day`` /
``parse_time`` turn a tool argument into a ``date`` / ``time`` or raise ``ValueError`` with a
sentence the agent can say. A bare hour with no am/pm means office hours: 8-12 morning,
1-7 afternoon.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta

from voice_ai.agent.profile import WEEKDAYS

__all__ = [
    "PARTS_OF_DAY",
    "find_day",
    "find_days",
    "find_part_of_day",
    "find_time",
    "find_times",
    "parse_time",
    "resolve_day",
    "on_day",
    "say_date",
    "say_list",
    "say_time",
]

PARTS_OF_DAY: dict[str, tuple[time, time]] = {
    "morning": (time(0, 0), time(12, 0)),
    "afternoon": (time(12, 0), time(17, 0)),
    "evening": (time(17, 0), time(23, 59)),
}
_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}
_MINUTE_WORDS = {"fifteen": 15, "thirty": 30, "forty five": 45, "forty-five": 45,
                 "o'clock": 0, "oclock": 0}
_DAY_ALIASES = {"tues": "tuesday", "weds": "wednesday", "thurs": "thursday", "mon": "monday",
                "fri": "friday", "sat": "saturday", "sun": "sunday"}
_HOUR = r"(\d{1,2}|" + "|".join(_NUMBERS) + r")"
_MERIDIEM = r"(a\.?\s?m\.?|p\.?\s?m\.?)"
_TIME_PATTERNS = [
    # 14:30, 2.30pm, 10:00 a.m.
    re.compile(r"\b(\d{1,2})[:.](\d{2})\s*" + _MERIDIEM + r"?(?![\w])"),
    # half past two, quarter past ten, quarter to three
    re.compile(r"\b(half past|quarter past|quarter to)\s+" + _HOUR + r"\b\s*" + _MERIDIEM + "?"),
    # ten thirty, two fifteen pm
    re.compile(r"\b" + _HOUR + r"\s+(fifteen|thirty|forty[ -]five)\b\s*" + _MERIDIEM + "?"),
    # 10am, 2 p.m., ten o'clock, at 3, noon
    re.compile(r"\b" + _HOUR + r"\s*(o'?clock)?\s*" + _MERIDIEM + r"(?![\w])"),
    re.compile(r"\b" + _HOUR + r"\s*(o'?clock)\b"),
    re.compile(r"\b(?:at|for|around|about|after|by|from)\s+" + _HOUR
               + r"\b(?![:.]\d)(?!\s*(?:st|nd|rd|th|o'?clock|a\.?\s?m|p\.?\s?m|fifteen|thirty"
               r"|forty|people|persons|of|children|kids|patients|minutes|hours|days|weeks)\b)"),
]


def _hour(token: str) -> int:
    return int(token) if token.isdigit() else _NUMBERS[token]


def _office_hour(hour: int, meridiem: str | None) -> int:
    if meridiem:
        pm = meridiem.replace(".", "").replace(" ", "").startswith("p")
        if pm and hour < 12:
            return hour + 12
        if not pm and hour == 12:
            return 0
        return hour
    return hour + 12 if 1 <= hour <= 7 else hour


def _first_match(t: str) -> tuple[re.Match[str], int] | None:
    """The earliest time expression in ``t`` (the more specific pattern on a tie)."""
    found = [(m, i) for i, p in enumerate(_TIME_PATTERNS) if (m := p.search(t))]
    return min(found, key=lambda f: (f[0].start(), f[1])) if found else None


def _value(m: re.Match[str], i: int) -> tuple[int, int, str | None]:
    g = m.groups()
    if i == 0:
        return int(g[0]), int(g[1]), g[2]
    if i == 1:
        base = _hour(g[1])
        if g[0] == "quarter to":
            return base - 1, 45, g[2]
        return base, 30 if g[0] == "half past" else 15, g[2]
    if i == 2:
        return _hour(g[0]), _MINUTE_WORDS[g[1].replace("-", " ")], g[2]
    if i == 3:
        return _hour(g[0]), 0, g[2]
    return _hour(g[0]), 0, None


def _heard(text: str) -> str:
    """Speech-to-text spellings of clock phrases, made regular: "half pass? Nine" -> "half
    past nine" (whisper splits and misspells "past")."""
    t = text.lower()
    return re.sub(r"\b(half|quarter) pas(?:s|sed|t)\b[?.,!]*\s*", r"\1 past ", t)


def find_time(text: str) -> str | None:
    """The first clock time in ``text`` as ``HH:MM``, or ``None``."""
    t = _heard(text)
    first = _first_match(t)
    noon = re.search(r"\bnoon\b|\bmidday\b", t)
    if noon and (first is None or noon.start() < first[0].start()):
        return "12:00"
    if first is None:
        return None
    hour, minute, mer = _value(*first)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    hour = hour if hour > 12 else _office_hour(hour, mer)
    return f"{hour:02d}:{minute:02d}"


def find_day(text: str) -> str | None:
    """The first day in ``text``: a weekday name, ``today``, ``tomorrow`` or an ISO date."""
    t = text.lower()
    iso = re.search(r"\b(\d{4}-\d{2}-\d{2})\b", t)
    if iso:
        return iso.group(1)
    found: list[tuple[int, str]] = []
    for word in ("today", "tomorrow", *WEEKDAYS, *_DAY_ALIASES):
        m = re.search(r"\b" + word + r"\b", t)
        if m:
            found.append((m.start(), _DAY_ALIASES.get(word, word)))
    return min(found)[1] if found else None


def find_days(text: str) -> list[str]:
    """Every day named in ``text``, in order (for "from Tuesday to Thursday")."""
    t = text.lower()
    found: list[tuple[int, str]] = []
    for word in ("today", "tomorrow", *WEEKDAYS, *_DAY_ALIASES):
        for m in re.finditer(r"\b" + word + r"\b", t):
            found.append((m.start(), _DAY_ALIASES.get(word, word)))
    return [d for _, d in sorted(found)]


def find_times(text: str) -> list[str]:
    """Every clock time in ``text``, in order (each found in what follows the previous one)."""
    times: list[str] = []
    rest = _heard(text)
    while True:
        t = find_time(rest)
        if t is None:
            return times
        times.append(t)
        cut = _end_of_first_time(rest)
        if cut is None:
            return times
        rest = rest[cut:]


def _end_of_first_time(text: str) -> int | None:
    first = _first_match(text)
    noon = re.search(r"\bnoon\b|\bmidday\b", text)
    if noon and (first is None or noon.start() < first[0].start()):
        return noon.end()
    return first[0].end() if first else None


def find_part_of_day(text: str) -> str | None:
    t = text.lower()
    return next((p for p in PARTS_OF_DAY if p in t), None)


def resolve_day(value: str, today: date) -> date:
    """A tool's ``day`` argument as a date: weekday names mean the next such day (today
    included), ``today``, ``tomorrow``, or ``YYYY-MM-DD``."""
    v = value.strip().lower()
    v = _DAY_ALIASES.get(v, v)
    if v == "today":
        return today
    if v == "tomorrow":
        return today + timedelta(days=1)
    if v in WEEKDAYS:
        return today + timedelta(days=(WEEKDAYS.index(v) - today.weekday()) % 7)
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise ValueError(f"I did not understand the day {value!r}; please say a weekday "
                         "or a date") from None


def parse_time(value: str) -> time:
    """A tool's ``time`` argument (``HH:MM``, or as said: "10am", "half past two")."""
    v = value.strip().lower()
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", v)
    found = f"{int(m.group(1)):02d}:{m.group(2)}" if m else find_time(v)
    if found is None:
        found = find_time(f"at {v}")
    if found is None:
        raise ValueError(f"I did not understand the time {value!r}; please say a time like "
                         "10 am or half past two")
    hour, minute = (int(x) for x in found.split(":"))
    if hour > 23 or minute > 59:
        raise ValueError(f"{value!r} is not a time of day")
    return time(hour, minute)


def say_time(t: time) -> str:
    """10:00 -> "10 am", 14:30 -> "2:30 pm", 12:00 -> "12 noon"."""
    if t == time(12, 0):
        return "12 noon"
    hour = t.hour % 12 or 12
    suffix = "am" if t.hour < 12 else "pm"
    return f"{hour} {suffix}" if t.minute == 0 else f"{hour}:{t.minute:02d} {suffix}"


def say_date(d: date, today: date) -> str:
    """"today", "tomorrow, Tuesday 1 December", "Tuesday 1 December"."""
    named = f"{d.strftime('%A')} {d.day} {d.strftime('%B')}"
    if d == today:
        return "today"
    if d == today + timedelta(days=1):
        return f"tomorrow, {named}"
    return named


def on_day(d: date, today: date) -> str:
    """"today", "tomorrow, Tuesday 1 December", "on Tuesday 1 December"."""
    said = say_date(d, today)
    return said if d - today <= timedelta(days=1) else f"on {said}"


def say_list(items: list[str], last: str = "and") -> str:
    """"a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {last} {items[-1]}"
