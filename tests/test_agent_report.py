"""`voice-ai report daily` lists the appointments the agent booked that day and the calls it
put through to a person."""

from __future__ import annotations

import json
from datetime import date, time
from pathlib import Path

import pytest

from tests.test_reports import DAY, at, cli, env  # noqa: F401  (env: the reports' fixture)
from tests.test_store import make_call
from voice_ai.records import EndReason
from voice_ai.store import CallStore
from voice_ai.store.appointments import Appointment, AppointmentStore
from voice_ai.store.schema import open_writer

pytestmark = pytest.mark.unit


def test_daily_report_lists_the_days_appointments(env: dict[str, Path]) -> None:  # noqa: F811
    store = CallStore(env["db"])
    store.write_call(make_call("call-1", started_at=at("09:00")))
    store.write_call(make_call("call-2", started_at=at("10:00"),
                               end_reason=EndReason.TRANSFERRED))
    store.close()
    conn = open_writer(env["db"])
    times = iter([at("09:01"), at("11:30"), at("23:59", "2026-03-11")])
    book = AppointmentStore(conn, clock=lambda: next(times))
    book.book(Appointment(day=date(2026, 3, 12), start=time(10, 0), service="check-up",
                          caller_name="Anna Smith", call_id="call-1"))
    book.cancel(date(2026, 3, 12), time(10, 0))  # cancelled later the same morning
    book.book(Appointment(day=date(2026, 3, 13), start=time(9, 30), service="filling"))
    conn.close()

    code, out, err = cli("report", "daily", "--date", DAY, "--format", "markdown", "--no-chart")
    assert code == 0, err
    assert "| transferred to a person | 1 |" in out
    section = out.split("## Appointments booked by the agent")[1]
    assert "| 2026-03-12 | 10:00 | check-up | cancelled | call-1 |" in section
    assert "2026-03-13" not in section  # booked the next day: another day's report
    assert "Anna" not in out  # callers' names stay in the store

    code, out, _ = cli("report", "daily", "--date", DAY, "--format", "json")
    data = json.loads(out)
    assert [a["status"] for a in data["appointments"]] == ["cancelled"]
    assert (data["transferred"], data["completed"]) == (1, 1)
