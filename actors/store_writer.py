"""The one store writer of the cluster, and the client call actors use to reach it.

``StoreWriter`` is a named actor that owns the only writing ``CallStore`` (SQLite allows one
writer; WAL lets reports and backups read meanwhile). It is **pinned to the head node** by
asking for a sliver of Ray's built-in ``node:__internal_head__`` resource, which only the head
node has: a restart after a crash lands on the head node again, where ``data/`` lives. It
restarts forever (``max_restarts=-1``) and never re-runs a task itself (``max_task_retries=0``):
retrying is the client's job, which is safe because writes are idempotent by call id.

``StoreClient.write_call`` returns only once the writer has committed the record (so a call
actor logs ``CALL_END`` after its record is durable). While the writer is dead or restarting it
retries with exponential backoff and jitter until its deadline, then raises
``StoreUnavailableError``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from voice_ai.config import Settings
from voice_ai.records import CallRecord
from voice_ai.store import CallStore, StoreUnavailableError

__all__ = ["WRITER_NAME", "StoreClient", "StoreWriter", "ensure_store_writer"]

WRITER_NAME = "store_writer"
HEAD_NODE_RESOURCE = "node:__internal_head__"  # ray._common.constants.HEAD_NODE_RESOURCE_NAME
# A writer that cannot be reached, or whose name is not registered yet during a restart.
_RETRYABLE = (ActorDiedError, ActorUnavailableError, RayActorError, ValueError)


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class StoreWriter:
    """Ray shell around ``CallStore``; a sync actor, so writes run one at a time."""

    def __init__(self, db_path: str, store_transcripts: bool) -> None:
        self._store = CallStore(Path(db_path), store_transcripts=store_transcripts)

    def write_call(self, record: CallRecord) -> bool:
        return self._store.write_call(record)

    def write_event(
        self, kind: str, component: str, detail: str, ts: float, event_id: str | None = None
    ) -> bool:
        return self._store.write_event(
            kind, component=component, detail=detail, ts=ts, event_id=event_id
        )

    def pid(self) -> int:
        return os.getpid()


def ensure_store_writer(
    settings: Settings, *, name: str = WRITER_NAME, detached: bool = False,
    namespace: str | None = None,
) -> ActorHandle:
    """Get the named writer, creating it on the head node if it does not exist yet.

    The database path is resolved here, on the caller's side, so the actor does not depend on
    its worker's working directory. ``detached=True`` keeps it alive after this job ends.
    """
    options: dict[str, Any] = {
        "name": name,
        "get_if_exists": True,
        "resources": {HEAD_NODE_RESOURCE: 0.001},
    }
    if detached:
        options["lifetime"] = "detached"
    if namespace is not None:
        options["namespace"] = namespace
    return StoreWriter.options(**options).remote(  # type: ignore[attr-defined]
        str(settings.db_path.resolve()), settings.store_transcripts
    )


class StoreClient:
    """Async access to the writer, with retries until ``deadline_s`` per write.

    Give it a handle (``ensure_store_writer``'s) or let it find the writer by ``name``.
    ``sleep``, ``clock`` and ``rng`` are injectable so tests run without real waiting.
    """

    def __init__(
        self,
        writer: ActorHandle | None = None,
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
        """Return once ``record`` is committed: ``True`` if new, ``False`` if already there."""
        return bool(await self._call("write_call", record))

    async def write_event(self, kind: str, *, component: str, detail: str, ts: float) -> bool:
        # One id for every attempt, so a retried event is stored once.
        return bool(await self._call("write_event", kind, component, detail, ts,
                                     uuid.uuid4().hex))

    def _handle(self) -> ActorHandle:
        # A given handle stays valid across restarts; a name is looked up again after a failure
        # (ValueError while the name is not registered: retried like an unreachable writer).
        if self._writer is None:
            self._writer = ray.get_actor(self._name, namespace=self._namespace)
        return self._writer

    async def _call(self, method: str, *args: object) -> object:
        deadline = self._clock() + self._deadline_s
        delay = self._backoff_initial_s
        attempts = 0
        while True:
            attempts += 1
            remaining = deadline - self._clock()
            try:
                ref = getattr(self._handle(), method).remote(*args)
                return await asyncio.wait_for(ref, timeout=max(remaining, 0.001))
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
