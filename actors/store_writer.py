"""The one store writer of the cluster, and the client every other actor reaches it with.

``StoreWriter`` is a named actor that owns the only writing ``CallStore`` (SQLite allows one
writer; WAL lets reports and backups read meanwhile), through ``StoreWriterCore``: it opens the
database on first use and answers every write with a ``WriteOutcome`` (a locked database, a full
disk or a wrong schema is a value, never an exception that would kill the caller's task). It is
**pinned to the head node** by asking for a sliver of Ray's built-in ``node:__internal_head__``
resource, which only the head node has: a restart lands on the head node again, where ``data/``
lives. It restarts forever (``max_restarts=-1``) and never re-runs a task itself
(``max_task_retries=0``): retrying is the client's job, safe because writes are idempotent by
call id (and by event id).

``StoreClient`` retries while the writer is dead or restarting, with exponential backoff and
jitter until its deadline. ``durable_records`` builds what a call actor (or the dispatcher)
stores records with: bounded retries of every problem, then this node's spool.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from datetime import time as day_time
from pathlib import Path
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from actors.system_env import SYSTEM_RUNTIME_ENV
from voice_ai.config import Settings
from voice_ai.observability.scrub import Scrubber, scrub_record
from voice_ai.records import CallRecord
from voice_ai.store import StoreUnavailableError
from voice_ai.store.appointments import Appointment, AppointmentWriter
from voice_ai.store.durable import DurableRecords, SpoolObserver
from voice_ai.store.errors import StoreError
from voice_ai.store.outcome import StoreProblem, WriteOutcome
from voice_ai.store.spool import RecordSpool
from voice_ai.store.writer import StoreWriterCore

__all__ = ["WRITER_NAME", "StoreClient", "StoreWriter", "durable_records",
           "ensure_store_writer", "secrets_of", "spool_dir"]

WRITER_NAME = "store_writer"
HEAD_NODE_RESOURCE = "node:__internal_head__"  # ray._common.constants.HEAD_NODE_RESOURCE_NAME
# A writer that cannot be reached, or whose name is not registered yet during a restart.
_RETRYABLE = (ActorDiedError, ActorUnavailableError, RayActorError, ValueError)


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class StoreWriter:
    """Ray shell around ``StoreWriterCore``; a sync actor, so writes run one at a time."""

    def __init__(self, db_path: str, store_transcripts: bool,
                 secrets: tuple[str, ...] = ()) -> None:
        # everything written is scrubbed like the logs, the configured keys included
        self._core = StoreWriterCore(Path(db_path), store_transcripts=store_transcripts,
                                     scrub=Scrubber(secrets))
        self._appointments = AppointmentWriter(Path(db_path))

    def write_call(self, record: CallRecord) -> WriteOutcome:
        return self._core.write_call(record)

    def write_event(self, kind: str, component: str, detail: str, ts: float,
                    event_id: str | None = None) -> WriteOutcome:
        return self._core.write_event(kind, component, detail, ts, event_id)

    def open_admissions(self, since: float) -> list[str]:
        return self._core.open_admissions(since)

    # --- appointments the receptionist's tools book (voice_ai/agent/booking.py) -------------
    def book_appointment(self, appointment: Appointment) -> Appointment:
        return self._appointments.book(appointment)

    def cancel_appointment(self, day: date, start: day_time) -> Appointment:
        return self._appointments.cancel(day, start)

    def move_appointment(self, day: date, start: day_time, new_day: date, new_start: day_time
                         ) -> Appointment:
        return self._appointments.move(day, start, new_day, new_start)

    def appointments_on(self, day: date) -> list[Appointment]:
        return self._appointments.booked_on(day)

    def pid(self) -> int:
        return os.getpid()


def ensure_store_writer(
    settings: Settings, *, name: str = WRITER_NAME, detached: bool = False,
    namespace: str | None = None,
) -> ActorHandle[StoreWriter]:
    """Get the named writer, creating it on the head node if it does not exist yet.

    The database path is resolved here, on the caller's side, so the actor does not depend on
    its worker's working directory. ``detached=True`` keeps it alive after this job ends.
    """
    options: dict[str, Any] = {
        "name": name,
        "get_if_exists": True,
        "resources": {HEAD_NODE_RESOURCE: 0.001},
        "runtime_env": SYSTEM_RUNTIME_ENV,  # no plugins to import: restarts in a moment
    }
    if detached:
        options["lifetime"] = "detached"
    if namespace is not None:
        options["namespace"] = namespace
    handle: ActorHandle[StoreWriter] = StoreWriter.options(  # type: ignore[attr-defined]
        **options).remote(str(settings.db_path.resolve()), settings.store_transcripts,
                          tuple(secrets_of(settings)))
    return handle


def secrets_of(settings: Settings) -> list[str]:
    """The configured keys: redacted wherever they could be written (logs, store, spool)."""
    keys = (settings.deepgram_api_key, settings.openai_api_key, settings.cartesia_api_key,
            settings.livekit_api_secret, settings.calls_api_token)
    return [k.get_secret_value() for k in keys if k is not None and k.get_secret_value()]


class StoreWriteError(StoreError):
    """The writer answered, but could not store (``problem`` says why)."""

    def __init__(self, problem: StoreProblem, detail: str) -> None:
        super().__init__(f"store refused the write ({problem.value}): {detail}")
        self.problem = problem


class StoreClient:
    """Async access to the writer, with retries until ``deadline_s`` per write while the writer
    cannot be reached.

    Give it a handle (``ensure_store_writer``'s) or let it find the writer by ``name``.
    ``sleep``, ``clock`` and ``rng`` are injectable so tests run without real waiting.
    """

    def __init__(
        self,
        writer: ActorHandle[StoreWriter] | None = None,
        *,
        name: str = WRITER_NAME,
        namespace: str | None = None,
        deadline_s: float = 30.0,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._given = writer
        self._writer = writer
        self._name = name
        self._namespace = namespace
        self._deadline_s = deadline_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._clock = clock
        self._rng = rng

    async def write_call(self, record: CallRecord) -> bool:
        """Return once ``record`` is committed: ``True`` if new, ``False`` if already there.
        ``StoreWriteError`` if the store refused it, ``StoreUnavailableError`` past the
        deadline."""
        return _inserted(await self.try_write_call(record))

    async def try_write_call(self, record: CallRecord) -> WriteOutcome:
        """One write (retried only while the writer is unreachable); never raises."""
        return await self._outcome("write_call", record)

    async def write_event(self, kind: str, *, component: str, detail: str, ts: float,
                          event_id: str | None = None) -> bool:
        # One id for every attempt, so a retried event is stored once.
        outcome = await self._outcome("write_event", kind, component, detail, ts,
                                      event_id or uuid.uuid4().hex)
        return _inserted(outcome)

    async def try_write_event(self, kind: str, component: str, detail: str, ts: float,
                              event_id: str) -> WriteOutcome:
        """One event write (retried only while the writer is unreachable); never raises."""
        return await self._outcome("write_event", kind, component, detail, ts, event_id)

    async def open_admissions(self, since: float) -> list[str]:
        result: list[str] = await self._call("open_admissions", since)  # type: ignore[assignment]
        return result

    async def alive(self, timeout_s: float = 2.0) -> bool:
        try:
            await asyncio.wait_for(self._call_once("pid"), timeout_s)
            return True
        except Exception:
            self._writer = self._given
            return False

    async def _outcome(self, method: str, *args: object) -> WriteOutcome:
        try:
            result = await self._call(method, *args)
        except StoreUnavailableError as e:
            return WriteOutcome.failed(StoreProblem.UNAVAILABLE, str(e))
        assert isinstance(result, WriteOutcome), result
        return result

    async def _handle(self) -> ActorHandle[StoreWriter]:
        # A given handle stays valid across restarts; a name is looked up again after a failure
        # (ValueError while the name is not registered: retried like an unreachable writer).
        # The lookup asks the GCS and blocks: off the event loop.
        writer = self._writer
        if writer is None:
            found = await asyncio.to_thread(ray.get_actor, self._name,
                                            namespace=self._namespace)
            if found is None:
                raise ValueError(f"no actor named {self._name!r}")
            self._writer = writer = found
        return writer

    async def _call_once(self, method: str, *args: object) -> object:
        return await getattr(await self._handle(), method).remote(*args)

    async def _call(self, method: str, *args: object) -> object:
        deadline = self._clock() + self._deadline_s
        delay = self._backoff_initial_s
        attempts = 0
        while True:
            attempts += 1
            remaining = deadline - self._clock()
            try:
                return await asyncio.wait_for(self._call_once(method, *args),
                                              timeout=max(remaining, 0.001))
            except _RETRYABLE as e:
                last: BaseException = e
                self._writer = self._given  # by name: look it up again, it may be recreated
            except TimeoutError as e:
                last = e
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise StoreUnavailableError(
                    f"store writer {self._name!r} did not acknowledge {method} within "
                    f"{self._deadline_s:g} s ({attempts} attempts; last error: "
                    f"{type(last).__name__})"
                )
            await self._sleep(min(delay * (0.5 + self._rng()), remaining))
            delay = min(delay * 2, self._backoff_max_s)


def _inserted(outcome: WriteOutcome) -> bool:
    if outcome.problem is StoreProblem.UNAVAILABLE:
        raise StoreUnavailableError(outcome.detail)
    if not outcome.ok:
        assert outcome.problem is not None
        raise StoreWriteError(outcome.problem, outcome.detail)
    return outcome.inserted


class _StorePort:
    """``StoreWriterPort`` for ``DurableRecords``: one attempt per call."""

    def __init__(self, client: StoreClient) -> None:
        self._client = client

    async def write_call(self, record: CallRecord) -> WriteOutcome:
        return await self._client.try_write_call(record)


def spool_dir(settings: Settings) -> Path:
    return (settings.spool_dir or settings.data_dir / "spool").resolve()


def durable_records(settings: Settings, node_id: str, *,
                    observer: SpoolObserver | None = None) -> DurableRecords:
    """How this process stores call records: the writer (found by name, retried while it
    restarts, up to ACTOR_REPLY_TIMEOUT_S x 2 per attempt), bounded retries of any problem,
    then this node's spool."""
    client = StoreClient(namespace=settings.ray_namespace,
                         deadline_s=2 * settings.actor_reply_timeout_s)
    scrubber = Scrubber(secrets_of(settings))
    return DurableRecords(_StorePort(client), RecordSpool(spool_dir(settings), node_id[:12]),
                          attempts=settings.store_write_attempts,
                          budget_s=settings.store_retry_budget_s, observer=observer,
                          scrub=lambda r: scrub_record(r, scrubber))
