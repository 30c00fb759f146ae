"""The dispatcher: admits calls cluster-wide and runs each on a warm CallActor.

One named actor. Admission is ``voice_ai.pipeline.admission.AdmissionControl`` (no awaits
inside a decision, so bursts cannot over-admit). A warm pool of prepared call actors makes
setup a hand-over. An actor whose call completed goes back to the warm pool until it has served
CALL_ACTOR_MAX_CALLS calls (starting one costs ~6 CPU-seconds); one whose call failed retires.
The pool refills in the background, counting actors that will come back, but always keeping
at least half of WARM_CALL_ACTORS idle and ready for a burst.
When a call ends, the dispatcher stores its record (durable first), then reports it
(metrics, CALL_END). A call actor that dies (its node lost) ends the call as failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayActorError

from actors.busy import play_busy
from actors.call_actor import CallActor
from actors.names import TELEMETRY
from actors.store_writer import StoreClient
from actors.worker_setup import forward_logs
from voice_ai.config import Settings
from voice_ai.pipeline.admission import AdmissionControl, Decision
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transports import is_simulated_room
from voice_ai.records import CallDirection, CallOutcome, CallRecord, EndReason
from voice_ai.store import StoreUnavailableError

logger = logging.getLogger("voice_ai.dispatcher")
KEEP_FINISHED = 1000  # finished calls whose record `wait_call` can still return


@dataclass
class _Spare:
    """A prepared call actor in the warm pool, and how many calls it has served."""

    actor: ActorHandle
    node_id: str
    calls: int = 0


@ray.remote(max_restarts=-1, max_task_retries=0)
class Dispatcher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._admission = AdmissionControl(settings.max_concurrent_calls)
        self._warm: deque[_Spare] = deque()  # prepared actors, ready for a call
        self._active: dict[str, tuple[ActorHandle, str]] = {}  # call id -> (actor, key)
        self._returning = 0  # active calls whose actor will serve again
        self._actors_started = 0
        self._actors_reused = 0
        self._done: dict[str, asyncio.Future[CallRecord]] = {}
        self._cancelled: dict[str, EndReason] = {}
        self._refill_lock: asyncio.Lock | None = None
        self._telemetry = ray.get_actor(TELEMETRY, namespace=settings.ray_namespace)
        self._store = StoreClient(namespace=settings.ray_namespace)
        forward_logs(settings.ray_namespace)

    def _new_actor(self) -> ActorHandle:
        s = self._settings
        return CallActor.options(  # type: ignore[attr-defined]
            num_cpus=s.call_actor_num_cpus,
            memory=s.call_actor_memory_mb * 1024 * 1024,
            scheduling_strategy="SPREAD",
        ).remote(s)

    async def fill_warm_pool(self) -> int:
        """Start and prepare actors until the warm pool holds WARM_CALL_ACTORS. Returns size."""
        if self._refill_lock is None:
            self._refill_lock = asyncio.Lock()
        async with self._refill_lock:
            missing = self._missing_spares()
            if missing > 0:
                actors = [self._new_actor() for _ in range(missing)]
                self._actors_started += missing
                infos = await asyncio.gather(*(a.prepare.remote() for a in actors))
                self._warm.extend(_Spare(a, i["node_id"]) for a, i in
                                  zip(actors, infos, strict=True))
        return len(self._warm)

    def _missing_spares(self) -> int:
        """Actors to start now: the target less those idle and those that will come back,
        but never fewer idle than half the target (a burst must not find the pool empty)."""
        target = self._settings.warm_call_actors
        floor = (target + 1) // 2
        return max(target - len(self._warm) - self._returning, floor - len(self._warm))

    async def start_call(self, spec: CallSpec, key: str | None = None) -> dict[str, Any]:
        """Admit a call and start it. ``key`` (a room name) makes repeats idempotent."""
        admitted_at = time.time()
        key = key or spec.call_id
        decision, call_id = self._admission.admit(key, spec.call_id)
        if decision is Decision.DUPLICATE:
            return {"decision": decision.value, "call_id": call_id}
        direction = (CallDirection.SIMULATED if spec.scenario is not None
                     else CallDirection.OUTBOUND if spec.outbound else CallDirection.INBOUND)
        if decision is Decision.REJECTED:
            self._telemetry.call_rejected.remote(call_id, direction.value, spec.caller_masked)
            asyncio.create_task(self._reject(spec, direction, admitted_at))  # noqa: RUF006
            return {"decision": decision.value, "call_id": call_id}
        warm = bool(self._warm)
        spare = self._warm.popleft() if warm else _Spare(self._new_actor(), "")
        actor, node = spare.actor, spare.node_id
        self._actors_started += not warm
        spec = replace(spec, admitted_at=admitted_at, warm=warm)
        self._telemetry.call_started.remote(call_id, direction.value, spec.caller_masked,
                                            node[:12])
        self._active[call_id] = (actor, key)
        done: asyncio.Future[CallRecord] = asyncio.get_running_loop().create_future()
        self._done[call_id] = done
        reusable = spare.calls + 1 < self._settings.call_actor_max_calls
        self._returning += reusable
        asyncio.create_task(self._run(spare, spec, key, direction, done, reusable))  # noqa: RUF006
        asyncio.create_task(self.fill_warm_pool())  # noqa: RUF006
        return {"decision": decision.value, "call_id": call_id, "warm": warm}

    async def _run(self, spare: _Spare, spec: CallSpec, key: str, direction: CallDirection,
                   done: asyncio.Future[CallRecord], reusable: bool) -> None:
        actor = spare.actor
        serve_again = False
        try:
            record: CallRecord = await actor.run_call.remote(spec)
            serve_again = reusable and record.outcome is CallOutcome.COMPLETED
        except RayActorError as e:
            cancelled = self._cancelled.pop(spec.call_id, None)
            record = (_failed(spec, direction, cancelled, "cancelled: the call never connected")
                      if cancelled is not None else
                      _failed(spec, direction, EndReason.NODE_LOST,
                              f"call actor lost (node or process died): {type(e).__name__}"))
        except Exception as e:
            record = _failed(spec, direction, EndReason.ERROR, f"{type(e).__name__}: {e}")
        finally:
            self._admission.release(key)
            self._active.pop(spec.call_id, None)
            self._returning -= reusable
            if serve_again and len(self._warm) < self._settings.warm_call_actors:
                self._warm.append(_Spare(actor, spare.node_id, spare.calls + 1))
                self._actors_reused += 1
            else:
                ray.kill(actor, no_restart=True)
                if reusable:  # counted on coming back: start its replacement
                    asyncio.create_task(self.fill_warm_pool())  # noqa: RUF006
        await self._store_durably(record)
        await self._telemetry.call_ended.remote(record)  # CALL_END only after the store commit
        done.set_result(record)
        # webhook calls are never waited for: keep only the latest finished ones
        finished = [cid for cid, fut in self._done.items() if fut.done()]
        for cid in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._done[cid]

    async def _reject(self, spec: CallSpec, direction: CallDirection, at: float) -> None:
        """The busy path: a LiveKit caller hears the busy message and is hung up; every
        rejected call is recorded (outcome rejected, end reason rejected_busy)."""
        if spec.room is not None and not is_simulated_room(self._settings):
            try:
                await play_busy(self._settings, spec.room)
            except Exception as e:  # the caller may already be gone; the record still counts
                logger.warning("busy message not played",
                               extra={"call_id": spec.call_id, "error": f"{type(e).__name__}"})
        record = CallRecord(call_id=spec.call_id, direction=direction, started_at=at,
                            ended_at=time.time(), end_reason=EndReason.REJECTED_BUSY,
                            caller_masked=spec.caller_masked, warm_start=False)
        await self._store_durably(record)

    async def admit_room(self, room: str, caller_masked: str, outbound: bool) -> dict[str, Any]:
        """A LiveKit room needs an agent (webhook or outbound dial). Idempotent per room."""
        spec = CallSpec(call_id=new_call_id(), room=room, caller_masked=caller_masked,
                        outbound=outbound)
        return await self.start_call(spec, key=room)

    def cancel_room(self, room: str, reason: str) -> bool:
        """The admitted call in ``room`` never connected: stop its actor, record ``reason``."""
        for call_id, (actor, key) in self._active.items():
            if key == room:
                self._cancelled[call_id] = EndReason(reason)
                ray.kill(actor, no_restart=True)
                return True
        return False

    async def _store_durably(self, record: CallRecord) -> None:
        """Retry until the writer commits: a record sent while it is down is late, never lost."""
        while True:
            try:
                await self._store.write_call(record)
                return
            except StoreUnavailableError as e:
                logger.error("call record not stored yet, retrying",
                             extra={"call_id": record.call_id, "error": str(e)})

    async def wait_call(self, call_id: str) -> CallRecord:
        fut = self._done.get(call_id)
        if fut is None:
            raise KeyError(f"unknown call id {call_id}")
        record = await asyncio.shield(fut)
        self._done.pop(call_id, None)
        return record

    async def run_simulated(self, spec: CallSpec) -> CallRecord | dict[str, Any]:
        """Admit, run and wait for one simulated call (the CLI and tests use this)."""
        started = await self.start_call(spec)
        if started["decision"] != Decision.ACCEPTED:
            return started
        return await self.wait_call(started["call_id"])

    def status(self) -> dict[str, Any]:
        return {
            "active_calls": self._admission.active,
            "max_concurrent_calls": self._admission.limit,
            "warm_ready": len(self._warm),
            "warm_target": self._settings.warm_call_actors,
            "accepted_total": self._admission.accepted_total,
            "rejected_total": self._admission.rejected_total,
            "call_actors_started_total": self._actors_started,
            "call_actors_reused_total": self._actors_reused,
        }

    async def process_stats(self) -> dict[tuple[str, str], dict[str, float]]:
        """CPU and memory of call actors (active and warm), summed per node."""
        actors = [a for a, _ in self._active.values()] + [s.actor for s in self._warm]
        results = await asyncio.gather(*(a.stats.remote() for a in actors),
                                       return_exceptions=True)
        per_node: dict[tuple[str, str], dict[str, float]] = {}
        for r in results:
            if isinstance(r, BaseException):
                continue
            slot = per_node.setdefault(("call_actors", r["node_id"][:12]),
                                       {"cpu_percent": 0.0, "rss_bytes": 0.0})
            slot["cpu_percent"] += r["cpu_percent"]
            slot["rss_bytes"] += r["rss_bytes"]
        return per_node


def new_call_id() -> str:
    return uuid.uuid4().hex[:16]


def _failed(spec: CallSpec, direction: CallDirection, reason: EndReason, error: str) -> CallRecord:
    return CallRecord(call_id=spec.call_id, direction=direction, started_at=spec.admitted_at,
                      ended_at=time.time(), end_reason=reason, caller_masked=spec.caller_masked,
                      warm_start=spec.warm, error=error)
