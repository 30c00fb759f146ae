"""StoreClient's retries, with a fake writer handle in front of a real CallStore (no Ray)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ray.exceptions import ActorDiedError, RayActorError

from actors.store_writer import StoreClient, StoreWriteError
from tests.test_store import make_call, rows
from voice_ai.store import CallStore, StoreUnavailableError
from voice_ai.store.outcome import StoreProblem, WriteOutcome

pytestmark = pytest.mark.unit


class FakeMethod:
    """``handle.method.remote(...)``: raises the scripted outages first, then runs ``fn``.

    An outage given as ``("after", error)`` runs ``fn`` and then raises: the writer committed
    but died before its acknowledgement reached the client.
    """

    def __init__(self, fn: Callable[..., Any], outages: list[Any]) -> None:
        self._fn = fn
        self._outages = outages
        self.calls = 0

    def remote(self, *args: Any) -> Any:
        self.calls += 1

        async def run() -> Any:
            if self._outages:
                outage = self._outages.pop(0)
                if isinstance(outage, tuple):
                    self._fn(*args)
                    raise outage[1]
                raise outage
            return self._fn(*args)

        return run()


class FakeWriter:
    """The writer actor's methods over a real store: answers are ``WriteOutcome`` values."""

    def __init__(self, store: CallStore, outages: list[Any]) -> None:
        self.write_call = FakeMethod(lambda r: WriteOutcome.stored(store.write_call(r)),
                                     outages)
        self.write_event = FakeMethod(
            lambda kind, component, detail, ts, event_id: WriteOutcome.stored(
                store.write_event(kind, component=component, detail=detail, ts=ts,
                                  event_id=event_id)),
            outages,
        )


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client_for(writer: FakeWriter, fake: FakeTime, deadline_s: float = 30.0) -> StoreClient:
    return StoreClient(writer, deadline_s=deadline_s, sleep=fake.sleep,  # type: ignore[arg-type]
                       clock=fake.clock, rng=lambda: 0.5)


async def test_write_waits_out_a_restarting_writer_with_growing_backoff(tmp_path: Path) -> None:
    store, fake = CallStore(tmp_path / "v.db"), FakeTime()
    writer = FakeWriter(store, [ActorDiedError(), RayActorError(), RayActorError()])
    assert await client_for(writer, fake).write_call(make_call("c1")) is True
    assert fake.sleeps == [0.05, 0.1, 0.2]
    assert rows(tmp_path / "v.db", "SELECT call_id FROM calls") == [("c1",)]


async def test_a_lost_acknowledgement_is_retried_without_a_duplicate(tmp_path: Path) -> None:
    store, fake = CallStore(tmp_path / "v.db"), FakeTime()
    writer = FakeWriter(store, [("after", ActorDiedError())])
    client = client_for(writer, fake)
    assert await client.write_call(make_call("c1")) is False  # already committed: acknowledged
    assert writer.write_call.calls == 2
    assert rows(tmp_path / "v.db", "SELECT count(*) FROM calls") == [(1,)]
    assert rows(tmp_path / "v.db", "SELECT count(*) FROM turns") == [(2,)]

    writer.write_event._outages.append(("after", RayActorError()))
    assert await client.write_event("error", component="stt", detail="timeout", ts=1.0) is False
    assert rows(tmp_path / "v.db", "SELECT kind, component FROM events") == [("error", "stt")]


async def test_a_writer_that_never_returns_raises_after_the_deadline(tmp_path: Path) -> None:
    store, fake = CallStore(tmp_path / "v.db"), FakeTime()
    writer = FakeWriter(store, [ActorDiedError() for _ in range(100)])
    with pytest.raises(StoreUnavailableError, match=r"did not acknowledge write_call within 5 s"):
        await client_for(writer, fake, deadline_s=5.0).write_call(make_call("c1"))
    assert fake.now == pytest.approx(5.0)
    assert max(fake.sleeps) == 1.0  # backoff capped
    assert rows(tmp_path / "v.db", "SELECT count(*) FROM calls") == [(0,)]


async def test_a_store_that_refuses_is_an_error_naming_the_problem(tmp_path: Path) -> None:
    store, fake = CallStore(tmp_path / "v.db"), FakeTime()
    writer = FakeWriter(store, [])
    writer.write_call = FakeMethod(
        lambda r: WriteOutcome.failed(StoreProblem.LOCKED, "database is locked"), [])
    client = client_for(writer, fake)
    with pytest.raises(StoreWriteError, match=r"\(locked\): database is locked"):
        await client.write_call(make_call("c1"))
    outcome = await client.try_write_call(make_call("c1"))  # the port DurableRecords uses
    assert outcome.problem is StoreProblem.LOCKED and fake.sleeps == []  # not retried here
