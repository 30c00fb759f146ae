"""In-memory ports of ``voice_ai.calls``: call actors, the store, the journal, the hub.

``FakeCallActor`` runs the real ``CallHost``; only the process around it is simulated: it can
be told to hang or fail in ``prepare`` / ``begin``, and to die (every wait on it then raises
``CallActorLost``, as a Ray actor whose process was SIGKILLed). A call lasts until the test
ends it with ``finish`` (or ``auto_finish`` ends every call at once). A resumed call's
record holds its checkpoint's turns and one more; ``hand_over`` stops a call at once.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from voice_ai.calls.host import CallHost
from voice_ai.calls.journal import AdmittedCall
from voice_ai.calls.ports import (
    ActorInfo,
    CallActorLost,
    CallEnd,
    CallTicket,
    Durability,
    ProcessStats,
    ResumeReport,
)
from voice_ai.pipeline.checkpoint import CallHandedOver, decode
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallDirection, CallRecord, EndReason, TurnTimings
from voice_ai.webrtc.signalling import SdpAnswer

__all__ = [
    "FakeCallActor",
    "FakeFactory",
    "FakeJournal",
    "FakeRecords",
    "FakeTelemetry",
    "RecordingBusyPlayer",
]


class FakeRecords:
    """The store and the spool: ``stored`` by call id (first write wins, like the store)."""

    def __init__(self) -> None:
        self.stored: dict[str, CallRecord] = {}
        self.spooled: list[CallRecord] = []
        self.writes = 0

    async def store(self, record: CallRecord) -> Durability:
        self.writes += 1
        self.stored.setdefault(record.call_id, record)
        return Durability.STORED

    def spool_now(self, record: CallRecord) -> None:
        self.spooled.append(record)


class FakeJournal:
    def __init__(self) -> None:
        self.admitted_at: dict[str, tuple[CallTicket, float]] = {}
        self.records: FakeRecords | None = None  # where "has a record" is looked up
        self.hang = False

    async def admitted(self, ticket: CallTicket, at: float) -> None:
        if self.hang:
            await asyncio.Event().wait()
        self.admitted_at[ticket.call_id] = (ticket, at)

    async def unfinished(self, since: float) -> list[AdmittedCall]:
        stored = self.records.stored if self.records is not None else {}
        return [AdmittedCall.of(t) for t, at in self.admitted_at.values()
                if at >= since and t.call_id not in stored]


class FakeTelemetry:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.rejected: list[str] = []
        self.ended: list[CallRecord] = []

    def call_started(self, call_id: str, direction: CallDirection, caller_masked: str,
                     node: str) -> None:
        self.started.append(call_id)

    def call_rejected(self, call_id: str, direction: CallDirection, caller_masked: str) -> None:
        self.rejected.append(call_id)

    async def call_ended(self, record: CallRecord) -> None:
        self.ended.append(record)


class RecordingBusyPlayer:
    def __init__(self, *, hang: bool = False) -> None:
        self.rooms: list[str] = []
        self.hang = hang

    async def play(self, room: str) -> None:
        if self.hang:
            await asyncio.Event().wait()
        self.rooms.append(room)


@dataclass
class _Runner:
    """The pipeline inside a fake actor: waits until the test finishes the call."""

    actor: FakeCallActor
    ends: dict[str, asyncio.Future[EndReason]] = field(default_factory=dict)

    async def run_call(self, spec: CallSpec) -> CallRecord:
        fut = self.ends.setdefault(spec.call_id, asyncio.get_running_loop().create_future())
        if self.actor.auto_finish is not None and not fut.done():
            fut.set_result(self.actor.auto_finish)
        host = self.actor.host
        before: tuple[TurnTimings, ...] = ()
        if spec.resume is not None and spec.resume.checkpoint is not None:
            before = decode(spec.resume.checkpoint, call_id=spec.call_id).turns
        host.listening(time.time())
        handover = asyncio.ensure_future(host.handover.wait())
        try:
            waits: list[asyncio.Future[Any]] = [fut, handover]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            handover.cancel()
        turns = (*before, TurnTimings(index=len(before), ended_speaking_at=spec.admitted_at,
                                      e2e_s=0.5))
        record = CallRecord(call_id=spec.call_id, direction=CallDirection.SIMULATED,
                            started_at=spec.admitted_at, ended_at=spec.admitted_at + 1,
                            end_reason=fut.result() if fut.done() else EndReason.CALLER_HANGUP,
                            node_id=self.actor.node_id, warm_start=spec.warm, turns=turns)
        if not fut.done():
            raise CallHandedOver(record)
        return record


class FakeCallActor:
    def __init__(self, name: str, node_id: str, records: FakeRecords, telemetry: FakeTelemetry,
                 *, prepare: str = "ok", begin: str = "ok",
                 auto_finish: EndReason | None = None) -> None:
        self._name = name
        self.node_id = node_id
        self.prepare_mode = prepare  # ok | hang | fail
        self.begin_mode = begin  # ok | hang | refuse_offer
        self.auto_finish = auto_finish
        self.host = CallHost(name, node_id, 1000, records, telemetry)
        self.runner = _Runner(self)
        self.prepared = False
        self.offers: list[str] = []
        self.stood_by: list[str] = []  # calls whose line this actor joined ahead (a drain)
        self.slow_info: asyncio.Event | None = None
        self.slow_reset: asyncio.Event | None = None
        self.dead = False
        self.cut_off = False
        self.retired = False
        self._death: asyncio.Future[None] | None = None
        self._prepare_gate: asyncio.Event | None = None

    @property
    def name(self) -> str:
        return self._name

    def _death_future(self) -> asyncio.Future[None]:
        if self._death is None:
            self._death = asyncio.get_running_loop().create_future()
            if self.dead:
                self._death.set_result(None)
        return self._death

    async def _alive(self) -> None:
        if self.dead:
            raise CallActorLost(f"{self._name} died")
        if self.cut_off:  # its node is gone, not yet declared dead: calls wait for that
            await self._or_die(asyncio.ensure_future(asyncio.Event().wait()))

    async def _or_die(self, coro: asyncio.Future[object] | asyncio.Task[object]) -> object:
        death = self._death_future()
        done, _ = await asyncio.wait({coro, death}, return_when=asyncio.FIRST_COMPLETED)
        if death in done:
            coro.cancel()
            raise CallActorLost(f"{self._name} died")
        return coro.result()

    async def prepare(self) -> ActorInfo:
        await self._alive()
        if self.prepare_mode == "hang":  # until ``release_prepare`` (or for ever)
            self._prepare_gate = asyncio.Event()
            await self._or_die(asyncio.ensure_future(self._prepare_gate.wait()))
        if self.prepare_mode == "fail":
            raise RuntimeError("VAD failed to load")
        self.prepared = True
        return self.host.info()

    async def answer_offer(self, ticket: CallTicket) -> SdpAnswer:
        await self._alive()
        if self.begin_mode == "hang":
            await self._or_die(asyncio.ensure_future(asyncio.Event().wait()))
        if self.begin_mode == "refuse_offer":
            raise RuntimeError("ICE gathering failed")
        self.offers.append(ticket.call_id)
        return SdpAnswer(sdp=f"v=0 answer for {ticket.call_id}")

    async def begin(self, ticket: CallTicket) -> None:
        await self._alive()
        if self.begin_mode == "hang":
            await self._or_die(asyncio.ensure_future(asyncio.Event().wait()))
        self.host.begin(ticket, self.runner)

    async def wait_end(self, call_id: str) -> CallEnd:
        await self._alive()
        end = await self._or_die(asyncio.ensure_future(self.host.wait_end(call_id)))
        assert isinstance(end, CallEnd)
        return end

    async def resume(self, ticket: CallTicket) -> ResumeReport:
        await self._alive()
        if self.begin_mode == "hang":
            await self._or_die(asyncio.ensure_future(asyncio.Event().wait()))
        if ticket.spec.resume is not None and ticket.spec.resume.checkpoint is not None:
            decode(ticket.spec.resume.checkpoint, call_id=ticket.call_id)  # refuses bad ones
        self.host.begin(ticket, self.runner)
        report = await self._or_die(asyncio.ensure_future(
            self.host.wait_listening(ticket.call_id)))
        assert isinstance(report, ResumeReport)
        return report

    async def stand_by(self, ticket: CallTicket) -> bool:
        await self._alive()
        self.stood_by.append(ticket.call_id)
        return ticket.spec.webrtc_offer is None

    async def hand_over(self, call_id: str) -> bool:
        await self._alive()
        return self.host.hand_over(call_id)

    async def info(self) -> ActorInfo:
        await self._alive()
        if self.slow_info is not None:  # e.g. still starting, or its loop is busy
            await self.slow_info.wait()
        return self.host.info()

    async def reset(self) -> None:
        await self._alive()
        if self.slow_reset is not None:  # e.g. its loop is busy collecting the call's garbage
            await self.slow_reset.wait()
        self.host.reset()

    def retire(self) -> None:
        self.retired = True
        self.die()

    async def stats(self) -> ProcessStats:
        await self._alive()
        return ProcessStats(self.node_id, 1000, 100_000_000, 1.0)

    # --- test controls ----------------------------------------------------------------------
    def finish(self, call_id: str, reason: EndReason = EndReason.CALLER_HANGUP) -> None:
        fut = self.runner.ends.setdefault(call_id, asyncio.get_running_loop().create_future())
        fut.set_result(reason)

    def release_prepare(self) -> None:
        """A ``prepare="hang"`` actor finishes preparing now (e.g. a slow cold start)."""
        if self._prepare_gate is not None:
            self._prepare_gate.set()

    def lose_node(self) -> None:
        """Its node is gone and not yet declared dead: every call on it waits (as Ray's do
        until the node's health checks fail), then raises ``CallActorLost`` on ``die``."""
        self.cut_off = True

    def die(self) -> None:
        """SIGKILL: the call's task stops with the process; its record is never written."""
        self.dead = True
        if self.host._task is not None:
            self.host._task.cancel()
        death = self._death_future()
        if not death.done():
            death.set_result(None)


class FakeFactory:
    def __init__(self, records: FakeRecords, telemetry: FakeTelemetry, **actor_options: object):
        self.records = records
        self.telemetry = telemetry
        self.actor_options = dict(actor_options)
        self.created: list[FakeCallActor] = []
        self.nodes = ("node-0", "node-1")  # new actors go round these
        self.preferred_off: list[frozenset[str]] = []  # each create's ``prefer_off``
        self.preferred_on: list[frozenset[str]] = []  # each create's ``prefer_on``
        self.pack = False  # True: each new actor on the first node it may go to
        self._ids = itertools.count(1)

    def create(self, ticket: CallTicket | None = None, *,
               avoid_nodes: frozenset[str] = frozenset(),
               prefer_off: frozenset[str] = frozenset(),
               prefer_on: frozenset[str] = frozenset()) -> FakeCallActor:
        count = len(self.nodes)
        order = (list(self.nodes) if self.pack  # the first node that may take it
                 else [self.nodes[(len(self.created) + i) % count] for i in range(count)])
        nodes = ([n for n in order if n in prefer_on - avoid_nodes]
                 or [n for n in order if n not in avoid_nodes | prefer_off]
                 or [n for n in order if n not in avoid_nodes] or ["node-2"])
        self.preferred_off.append(prefer_off)
        self.preferred_on.append(prefer_on)
        actor = FakeCallActor(f"callactor-{next(self._ids)}", nodes[0],
                              self.records, self.telemetry,
                              **self.actor_options)  # type: ignore[arg-type]
        self.created.append(actor)
        if ticket is not None:  # a cold start: it begins the call by itself once prepared
            actor.host.begin(ticket, actor.runner, prepare=actor.prepare)
        return actor

    async def existing(self) -> list[FakeCallActor]:
        return [a for a in self.created if not a.retired]

    @property
    def alive(self) -> list[FakeCallActor]:
        return [a for a in self.created if not a.dead]

    def running(self, call_id: str) -> FakeCallActor:
        for a in self.created:
            t = a.host.info().ticket
            if t is not None and t.call_id == call_id and not a.dead:
                return a
        raise KeyError(call_id)
