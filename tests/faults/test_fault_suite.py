"""The fault suite (issue #14, ``make test-faults``): every system actor killed in turn under 4
live calls, by ``ray.kill`` and by SIGKILL, plus the store locked for 15 s and its disk full.

``tests/faults/suite.py`` runs in its own process (its own Ray, 2 CPUs) and hands its result
over in a file; these tests assert on it and print the table docs/resilience.md carries.

In ``make test`` only the QUICK rows run (the dispatcher, the store writer, the breaker
registry and a call actor, each killed one way); ``make test-faults`` sets FAULT_SUITE=full and
runs every row.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests import background
from tests.faults.suite import PLAN, QUICK, table

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    run = background.result("fault_suite")  # ``python -m tests.faults.suite [--quick]``
    data = run.data
    if data is None:
        pytest.fail(f"the fault suite gave no result ({run.json_or_error()['error']})")
    print("\n" + table(data))
    assert "error" not in data, data["error"]
    return data


def test_every_fault_was_injected(result: dict[str, Any]) -> None:
    plan = [tuple(step) for step in result["plan"]]
    assert plan == (PLAN if os.environ.get("FAULT_SUITE") == "full" else QUICK)
    kills = {n for n, _ in PLAN[:-2]}
    assert [(r["fault"], r["how"] if r["fault"] in kills else "")
            for r in result["rows"]] == plan


def test_no_call_vanished_and_no_record_was_lost(result: dict[str, Any]) -> None:
    for row in result["rows"]:
        if row["skipped"]:
            continue
        assert row["in_progress"], f"{row['fault']} ({row['how']}) hit no live call"
        assert (row["vanished"], row["lost"]) == (0, 0), row
        assert row["unexplained"] == [], row  # every failed call says why
    final = result["final"]
    assert final["never_stored"] == [] and final["spool_left"] == 0, final
    assert final["admitted"] == final["stored"]


def test_the_system_recovers_from_every_fault(result: dict[str, Any]) -> None:
    for row in result["rows"]:
        if row["skipped"]:
            assert "mount" in row["skipped"], row  # only the disk fault, and it says why
            continue
        assert row["admit_s"] is not None, f"no call admitted after {row['fault']}"
        assert row["metrics_s"] is not None, f"/metrics not back after {row['fault']}"
        assert row["recover_s"] is not None, row


def test_callers_never_got_a_500_and_the_gauge_is_reconciled(result: dict[str, Any]) -> None:
    final = result["final"]
    assert final["http_500"] == 0, final["http_statuses"]
    assert final["metrics_status"] == 200
    assert final["active_calls_gauge"] == 0  # every call ended; never below zero
