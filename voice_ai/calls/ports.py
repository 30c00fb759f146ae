"""What the dispatch policies need from the world, as small protocols.

``actors/`` implements them with Ray (a few lines a method); tests use in-memory ones
(``tests/fakes/calls.py``). Values crossing a port are frozen dataclasses.

    CallActorPort       one call actor: prepare, begin a call, wait for its end, info, reset;
                        resume a call another actor began, hand its call over (drain)
    CallActorFactory    start a new call actor; list the ones that exist (after a restart)
    RecordSink          store a record durably (retries, then the local spool); never raises
    AdmissionJournal    note an admission in the store, list admissions that have no record
    TelemetrySink       the telemetry hub: call started / rejected / ended
    BusyPlayer          play the busy message into a room and hang up

Errors a port raises: ``CallActorLost`` (the actor's process or node is gone) and
``voice_ai.calls.deadline.DeadlineExceeded`` (it did not answer in time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from voice_ai.pipeline.checkpoint import SavedCheckpoint
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallDirection, CallRecord
from voice_ai.webrtc.signalling import SdpAnswer

__all__ = [
    "ActorInfo",
    "ActorPhase",
    "AdmissionJournal",
    "BusyPlayer",
    "CallActorFactory",
    "CallActorLost",
    "CallActorPort",
    "CallEnd",
    "CallTicket",
    "Durability",
    "ProcessStats",
    "RecordSink",
    "ResumeReport",
    "TelemetrySink",
    "UnfinishedCall",
    "direction_of",
]


class CallActorLost(Exception):
    """The call actor cannot be reached any more: its process or its node died."""


def direction_of(spec: CallSpec) -> CallDirection:
    if spec.scenario is not None:
        return CallDirection.SIMULATED
    if spec.webrtc_offer is not None:
        return CallDirection.WEBRTC
    return CallDirection.OUTBOUND if spec.outbound else CallDirection.INBOUND


@dataclass(frozen=True, slots=True)
class CallTicket:
    """An admitted call as the dispatcher hands it to a call actor. ``key`` is what admission
    dedupes on (the room, or the call id), so a new dispatcher can rebuild admission from it."""

    spec: CallSpec
    key: str

    @property
    def call_id(self) -> str:
        return self.spec.call_id

    @property
    def direction(self) -> CallDirection:
        return direction_of(self.spec)


class Durability(StrEnum):
    STORED = "stored"  # committed to the store
    SPOOLED = "spooled"  # in this node's spool file, replayed when the store is back
    HANDED_OVER = "handed_over"  # not stored here: another call actor carries the call on


@dataclass(frozen=True, slots=True)
class CallEnd:
    """A finished call: its record, already durable (stored or spooled) and reported."""

    record: CallRecord
    durability: Durability


class ActorPhase(StrEnum):
    IDLE = "idle"  # prepared, no call
    BUSY = "busy"  # a call is running
    ENDED = "ended"  # the call ended; waiting for the dispatcher to reset or retire it


@dataclass(frozen=True, slots=True)
class ActorInfo:
    """What a call actor says about itself (a new dispatcher adopts actors from this)."""

    name: str
    node_id: str
    pid: int
    calls_served: int  # calls begun in this process, the current one included
    phase: ActorPhase
    ticket: CallTicket | None = None  # the current or last call (BUSY / ENDED)
    end: CallEnd | None = None  # ENDED only
    checkpoint: SavedCheckpoint | None = None  # the call's latest (a new dispatcher keeps it)


@dataclass(frozen=True, slots=True)
class ResumeReport:
    """A call actor carrying on a call: when it listened to the caller again (unix s), or why
    the call ended before that (``error``; its record is then stored by that actor)."""

    node_id: str
    listening_at: float | None
    turns_restored: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class ProcessStats:
    node_id: str
    pid: int
    rss_bytes: int
    cpu_percent: float


class CallActorPort(Protocol):
    """One call actor. Every method may raise ``CallActorLost``."""

    @property
    def name(self) -> str: ...

    async def prepare(self) -> ActorInfo:
        """Load what a call needs (VAD, pool clients). Idempotent."""
        ...

    async def answer_offer(self, ticket: CallTicket) -> SdpAnswer:
        """A browser call (``ticket.spec.webrtc_offer``): build its transport and answer the
        SDP; the following ``begin`` runs the call on that transport."""
        ...

    async def begin(self, ticket: CallTicket) -> None:
        """Start the call and return at once; it runs inside the actor."""
        ...

    async def wait_end(self, call_id: str) -> CallEnd:
        """Return once the call ``call_id`` has ended and its record is durable (or, with
        ``Durability.HANDED_OVER``, its part here is done). Any number of waiters (a restarted
        dispatcher waits again)."""
        ...

    async def resume(self, ticket: CallTicket) -> ResumeReport:
        """Carry on the call another actor began (``ticket.spec.resume``: its checkpoint):
        rejoin its caller, restore, and return once listening. Raises (and takes nothing on)
        when the checkpoint cannot be read or the caller cannot be reached."""
        ...

    async def stand_by(self, ticket: CallTicket) -> bool:
        """Join the caller's line ahead of a hand-over (a drain): from the moment the call's
        current actor leaves, what the caller says reaches this one, to be heard once it
        ``resume``s the call. False where the caller's transport cannot (a LiveKit room, a
        browser): the resume then rejoins it."""
        ...

    async def hand_over(self, call_id: str) -> bool:
        """Stop the running call ``call_id`` at its next turn boundary without hanging up
        (``wait_end`` then says ``HANDED_OVER``). False if that call is not running here."""
        ...

    async def info(self) -> ActorInfo: ...

    async def reset(self) -> None:
        """Forget the ended call: the actor is IDLE again and can take the next one."""
        ...

    def retire(self) -> None:
        """Stop the actor's process (no restart). Never raises."""
        ...

    async def stats(self) -> ProcessStats: ...


class CallActorFactory(Protocol):
    def create(self, ticket: CallTicket | None = None, *,
               avoid_nodes: frozenset[str] = frozenset(),
               prefer_off: frozenset[str] = frozenset(),
               prefer_on: frozenset[str] = frozenset()) -> CallActorPort:
        """Start a new call actor (not prepared yet), on none of ``avoid_nodes`` (draining),
        and off ``prefer_off`` where another node can take it (a reserve spread over nodes),
        or on one of ``prefer_on`` where one can (spares packed where the calls and the
        system are, ``pack_onto``).
        With ``ticket`` (a cold start) it begins that call by itself as soon as it is ready:
        nothing is lost if the dispatcher dies while the actor starts."""
        ...

    async def existing(self) -> Sequence[CallActorPort]:
        """Every call actor of this system that exists now (to adopt after a restart)."""
        ...


class RecordSink(Protocol):
    async def store(self, record: CallRecord) -> Durability:
        """Store ``record``: retries within a bound, then the node's spool. Never raises for a
        store problem; the record is never dropped."""
        ...

    def spool_now(self, record: CallRecord) -> None:
        """Put ``record`` straight into the local spool (overload: no task to spare)."""
        ...


class UnfinishedCall(Protocol):
    """An admission the journal holds with no record (``voice_ai.calls.journal``)."""

    @property
    def call_id(self) -> str: ...

    @property
    def direction(self) -> CallDirection: ...

    @property
    def caller_masked(self) -> str: ...

    @property
    def admitted_at(self) -> float: ...

    @property
    def warm(self) -> bool: ...


class AdmissionJournal(Protocol):
    async def admitted(self, ticket: CallTicket, at: float) -> None:
        """Note the admission in the store (best effort, bounded)."""
        ...

    async def unfinished(self, since: float) -> Sequence[UnfinishedCall]:
        """Admissions noted since ``since`` (unix s) whose call has no record in the store."""
        ...


class TelemetrySink(Protocol):
    def call_started(self, call_id: str, direction: CallDirection, caller_masked: str,
                     node: str) -> None:
        """Fire and forget: counters, the active-calls gauge, ``CALL_START``."""
        ...

    def call_rejected(self, call_id: str, direction: CallDirection, caller_masked: str) -> None:
        """Fire and forget: the rejection counter, ``CALL_REJECTED``."""
        ...

    async def call_ended(self, record: CallRecord) -> None:
        """After the record is durable: counters, gauge, ``CALL_END``. Idempotent per call."""
        ...


class BusyPlayer(Protocol):
    async def play(self, room: str) -> None:
        """Join ``room``, say the busy message, hang up."""
        ...
