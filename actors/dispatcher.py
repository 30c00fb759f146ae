"""The dispatcher: one named actor, a Ray shell over ``voice_ai.calls.dispatch.CallDispatch``.

The policy (admission, warm pool, supervision with deadlines, recovery) is in ``voice_ai``;
this module only implements its ports with Ray:

- ``RayCallActors`` starts call actors **detached and named** (``callactor-<id>``), so they
  do not belong to the dispatcher: when Ray restarts the dispatcher, live calls carry on and
  the new dispatcher finds them by name (``existing``) and adopts them (``recover`` runs in
  the constructor; admissions wait for it).
- ``RayCallActor`` turns a dead actor (``RayActorError``) into ``CallActorLost``.
- the telemetry hub, the store (durable records, admission journal) and the busy message.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import uuid
from dataclasses import asdict
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayActorError

from actors.hub_client import RayTelemetry
from actors.names import CALL_ACTOR_PREFIX
from actors.store_writer import StoreClient, durable_records
from actors.system_env import CALL_ACTOR_RUNTIME_ENV
from actors.worker_setup import forward_logs
from voice_ai.calls.deadline import within
from voice_ai.calls.dispatch import CallDispatch, DispatchPolicy, DrainReport, StartResult
from voice_ai.calls.journal import StoreJournal
from voice_ai.calls.ports import (
    ActorInfo,
    CallActorLost,
    CallEnd,
    CallTicket,
    ProcessStats,
    ResumeReport,
)
from voice_ai.calls.resume import ResumePolicy, Resumption, StoreResumeLog
from voice_ai.config import Settings
from voice_ai.pipeline.checkpoint import SavedCheckpoint
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallRecord, EndReason
from voice_ai.store.outcome import WriteOutcome
from voice_ai.webrtc.signalling import OfferResult, SdpAnswer

__all__ = ["CALL_SLOT", "Dispatcher", "RayCallActor", "RayCallActors", "call_actor_resources",
           "new_call_id"]

logger = logging.getLogger("voice_ai.dispatcher")


@ray.remote(max_restarts=-1, max_task_retries=0)
class Dispatcher:
    def __init__(self, settings: Settings) -> None:
        forward_logs(settings.ray_namespace)
        node = ray.get_runtime_context().get_node_id()
        telemetry = RayTelemetry(settings.ray_namespace)
        store = StoreClient(namespace=settings.ray_namespace,
                            deadline_s=2 * settings.actor_reply_timeout_s)
        self._core = CallDispatch(
            DispatchPolicy.from_settings(settings), RayCallActors(settings),
            durable_records(settings, node, observer=telemetry.spool_observer(node)),
            StoreJournal(_JournalPort(store)), telemetry, RayBusyPlayer(settings),
            resumption=Resumption(ResumePolicy.from_settings(settings),
                                  StoreResumeLog(_JournalPort(store))),
            home_node=node)
        # call actors outlive a dispatcher: adopt them before admitting anything
        loop = asyncio.get_running_loop()
        self._recovery = loop.create_task(self._core.recover())
        self._imports = loop.create_task(self._preload())

    async def _preload(self) -> None:
        await self._core.wait_ready()  # the import would slow recovery down (the GIL)
        await _import_call_actor_class()

    async def start_call(self, spec: CallSpec, key: str | None = None) -> StartResult:
        """Admit a call and start it. ``key`` (a room name) makes repeats idempotent."""
        return await self._core.start_call(spec, key)

    async def admit_room(self, room: str, caller_masked: str, outbound: bool) -> StartResult:
        """A LiveKit room needs an agent (webhook or outbound dial). Idempotent per room."""
        return await self._core.admit_room(room, caller_masked, outbound, new_call_id())

    async def offer_call(self, spec: CallSpec) -> OfferResult:
        """A browser's WebRTC offer (``spec.webrtc_offer``): admitted like any call, answered
        by a call actor before the call begins (deployments/talk_routes.py)."""
        return await self._core.offer_call(spec)

    def cancel_room(self, room: str, reason: str) -> bool:
        """The admitted call in ``room`` never connected: stop its actor, record ``reason``."""
        return self._core.cancel_room(room, EndReason(reason))

    async def wait_call(self, call_id: str) -> CallRecord:
        return await self._core.wait_call(call_id)

    async def run_simulated(self, spec: CallSpec) -> CallRecord | StartResult:
        """Admit, run and wait for one simulated call (the CLI and tests use this)."""
        return await self._core.run_simulated(spec)

    async def fill_warm_pool(self) -> int:
        """Refill the warm pool and wait for it; return how many prepared actors are idle."""
        await self._recovery
        return await self._core.fill_warm_pool()

    def status(self) -> dict[str, Any]:
        """JSON view for /health/detailed and operators (see ``DispatchStatus``)."""
        status = asdict(self._core.status())
        status["active_call_ids"] = list(status["active_call_ids"])
        return status

    def active_call_ids(self) -> tuple[str, ...]:
        return self._core.status().active_call_ids

    # --- a call outlives its call actor (voice_ai.calls.resume) ------------------------------
    def checkpoint(self, saved: SavedCheckpoint) -> bool:
        """A call actor's checkpoint after a turn (fire-and-forget from the call actor)."""
        return self._core.checkpoint(saved)

    async def drain_node(self, node_id: str) -> DrainReport:
        """``voice-ai drain``: no new call actor on ``node_id``; its calls hand over."""
        await self._recovery
        return await self._core.drain_node(node_id)

    async def drain_status(self, node_id: str) -> DrainReport:
        return await self._core.drain_status(node_id)

    def undrain_node(self, node_id: str) -> bool:
        return self._core.undrain_node(node_id)

    async def call_actor_stats(self) -> list[ProcessStats]:
        """CPU and memory of every call actor, active and warm (those that answer in time)."""
        results = await asyncio.gather(  # best effort, for metrics: a short deadline each
            *(within(a.stats(), 1.0, a.name) for a in self._core.actors()),
            return_exceptions=True)
        return [r for r in results if isinstance(r, ProcessStats)]


def new_call_id() -> str:
    return uuid.uuid4().hex[:16]


CALL_SLOT = "call_slot"
"""The custom resource a call actor holds (CALL_ACTOR_SLOTS of it): CPU node types declare
how many calls they carry (cluster.aws.yaml), so demand for calls is what the autoscaler
sees and scales on."""


def call_actor_resources(settings: Settings) -> dict[str, float]:
    return {CALL_SLOT: settings.call_actor_slots} if settings.call_actor_slots > 0 else {}


async def _import_call_actor_class() -> None:
    """The call actor's module pulls in the whole call pipeline (seconds): this process starts
    without it (``actors.system_env``) and imports it off the event loop once admissions go on
    again, before the warm pool needs a new actor."""
    try:
        await asyncio.to_thread(importlib.import_module, "actors.call_actor")
    except Exception as e:  # imported on first use instead
        logger.warning("call actor class not preloaded", extra={"error": type(e).__name__})


class RayCallActor:
    """``CallActorPort`` over a call actor's handle."""

    def __init__(self, handle: ActorHandle[Any], name: str) -> None:
        self._handle = handle
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def _call(self, method: str, *args: object) -> Any:
        try:
            return await getattr(self._handle, method).remote(*args)
        except RayActorError as e:  # its process or node is gone (or it was stopped)
            raise CallActorLost(f"{self._name}: {type(e).__name__}") from e

    async def prepare(self) -> ActorInfo:
        info: ActorInfo = await self._call("prepare")
        return info

    async def answer_offer(self, ticket: CallTicket) -> SdpAnswer:
        answer: SdpAnswer = await self._call("answer_offer", ticket)
        return answer

    async def begin(self, ticket: CallTicket) -> None:
        await self._call("begin", ticket)

    async def wait_end(self, call_id: str) -> CallEnd:
        end: CallEnd = await self._call("wait_end", call_id)
        return end

    async def resume(self, ticket: CallTicket) -> ResumeReport:
        report: ResumeReport = await self._call("resume", ticket)
        return report

    async def stand_by(self, ticket: CallTicket) -> bool:
        standing: bool = await self._call("stand_by", ticket)
        return standing

    async def hand_over(self, call_id: str) -> bool:
        handed: bool = await self._call("hand_over", call_id)
        return handed

    async def info(self) -> ActorInfo:
        info: ActorInfo = await self._call("info")
        return info

    async def reset(self) -> None:
        await self._call("reset")

    def retire(self) -> None:
        try:
            ray.kill(self._handle, no_restart=True)
        except Exception:  # already gone
            pass

    async def stats(self) -> ProcessStats:
        stats: ProcessStats = await self._call("stats")
        return stats


class RayCallActors:
    """``CallActorFactory``: detached, named call actors in the system's namespace."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def create(self, ticket: CallTicket | None = None, *,
               avoid_nodes: frozenset[str] = frozenset(),
               prefer_off: frozenset[str] = frozenset(),
               prefer_on: frozenset[str] = frozenset()) -> RayCallActor:
        from actors.call_actor import CallActor  # preloaded off the loop (see above)

        s = self._settings
        name = f"{CALL_ACTOR_PREFIX}{uuid.uuid4().hex[:12]}"
        handle = CallActor.options(  # type: ignore[attr-defined]
            name=name, namespace=s.ray_namespace, lifetime="detached",
            num_cpus=s.call_actor_num_cpus, memory=s.call_actor_memory_mb * 1024 * 1024,
            resources=call_actor_resources(s),
            scheduling_strategy="SPREAD" if s.call_actor_placement == "spread" else "DEFAULT",
            runtime_env=CALL_ACTOR_RUNTIME_ENV,
            **_placement(avoid_nodes, prefer_off, prefer_on),
        ).remote(s, name, ticket)
        return RayCallActor(handle, name)

    async def existing(self) -> list[RayCallActor]:
        ns = self._settings.ray_namespace
        entries = await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True)
        names = [str(e["name"]) for e in entries
                 if e["namespace"] == ns and str(e["name"]).startswith(CALL_ACTOR_PREFIX)]
        # each lookup asks the GCS and blocks: in threads, side by side
        handles = await asyncio.gather(
            *(asyncio.to_thread(ray.get_actor, n, namespace=ns) for n in names),
            return_exceptions=True)
        return [RayCallActor(h, n) for n, h in zip(names, handles, strict=True)
                if not isinstance(h, BaseException)]  # gone since the listing


def _placement(nodes: frozenset[str], prefer_off: frozenset[str] = frozenset(),
               prefer_on: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Actor options keeping a new call actor off ``nodes`` (draining), on one of
    ``prefer_on`` or else off ``prefer_off`` unless no such node can take it: Ray's node
    labels, the preference as the selector and the hard rule as its ``fallback_strategy``."""
    def off(ns: frozenset[str]) -> dict[str, str]:
        return {"ray.io/node-id": f"!in({','.join(sorted(ns))})"} if ns else {}

    if on := prefer_on - nodes:
        return {"label_selector": {"ray.io/node-id": f"in({','.join(sorted(on))})"},
                "fallback_strategy": [{"label_selector": off(nodes)}]}
    if not prefer_off - nodes:
        return {"label_selector": off(nodes)} if nodes else {}
    return {"label_selector": off(nodes | prefer_off),
            "fallback_strategy": [{"label_selector": off(nodes)}]}


class _JournalPort:
    def __init__(self, store: StoreClient) -> None:
        self._store = store

    async def write_event(self, kind: str, component: str, detail: str, ts: float,
                          event_id: str) -> WriteOutcome:
        return await self._store.try_write_event(kind, component, detail, ts, event_id)

    async def open_admissions(self, since: float) -> list[str]:
        return await self._store.open_admissions(since)


class RayBusyPlayer:
    """The busy message into a LiveKit room; simulated rooms have no one to hear it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def play(self, room: str) -> None:
        from actors.busy import play_busy  # rare, and heavy: not on the restart path
        from voice_ai.pipeline.transports import is_simulated_room

        if not is_simulated_room(self._settings):
            await play_busy(self._settings, room)
