"""Days and times as callers say them and as whisper writes them."""

from __future__ import annotations

from datetime import date, time

import pytest

from voice_ai.agent.when import find_day, find_time, find_times, parse_time, resolve_day

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("said", "expected"), [
    ("Tuesday at 10", "10:00"), ("at 10 a.m.", "10:00"), ("2 o'clock please", "14:00"),
    ("at 8 pm", "20:00"), ("half past two", "14:30"), ("2.30pm", "14:30"),
    ("at ten thirty", "10:30"), ("quarter to four", "15:45"), ("at noon", "12:00"),
    ("for Wednesday at half pass? Nine in the morning.", "09:30"),  # whisper's spelling
    ("book for 2 people on Monday", None), ("on the 3rd", None),
])
def test_times_as_said(said: str, expected: str | None) -> None:
    assert find_time(said) == expected


def test_two_times_in_order_and_days() -> None:
    assert find_times("from Tuesday at 10 to Thursday at 2 pm") == ["10:00", "14:00"]
    assert find_day("uh, hours, um, saturday?") == "saturday"
    monday = date(2026, 11, 30)
    assert resolve_day("monday", monday) == monday  # today counts
    assert resolve_day("sunday", monday) == date(2026, 12, 6)
    assert resolve_day("tomorrow", monday) == date(2026, 12, 1)
    assert parse_time("14:30") == time(14, 30)
    with pytest.raises(ValueError, match="did not understand the day"):
        resolve_day("someday", monday)
    with pytest.raises(ValueError, match="did not understand the time"):
        parse_time("soonish")
