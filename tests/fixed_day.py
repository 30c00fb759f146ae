"""The receptionist's "today" in every end-to-end test and scenario.

A Monday with no holiday near: "Tuesday" is always tomorrow and "Friday at 2 pm" always
ahead, whatever day the suite runs. With the real date, a Tuesday's CI run heard "Tuesday"
booked as "today" (the reply names the weekday only when it is not today or tomorrow) and
failed the test that looked for it; a Friday afternoon's would have found 2 pm past.
"""

from __future__ import annotations

from datetime import date

AGENT_TODAY = date(2026, 11, 30)
