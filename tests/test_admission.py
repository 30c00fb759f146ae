"""Admission: never more than the limit, one call per room, releases free a slot."""

from __future__ import annotations

import pytest

from voice_ai.pipeline.admission import AdmissionControl, Decision

pytestmark = pytest.mark.unit


def test_burst_admits_exactly_the_limit() -> None:
    control = AdmissionControl(limit=4)
    decisions = [control.admit(f"room-{i}", f"c{i}")[0] for i in range(12)]
    assert decisions.count(Decision.ACCEPTED) == 4
    assert decisions.count(Decision.REJECTED) == 8
    assert control.active == 4
    assert (control.accepted_total, control.rejected_total) == (4, 8)


def test_repeated_room_returns_the_first_call() -> None:
    control = AdmissionControl(limit=2)
    assert control.admit("room-a", "c1") == (Decision.ACCEPTED, "c1")
    assert control.admit("room-a", "c2") == (Decision.DUPLICATE, "c1")
    assert control.active == 1


def test_release_frees_a_slot() -> None:
    control = AdmissionControl(limit=1)
    control.admit("a", "c1")
    assert control.admit("b", "c2")[0] is Decision.REJECTED
    control.release("a")
    assert control.admit("b", "c3") == (Decision.ACCEPTED, "c3")
