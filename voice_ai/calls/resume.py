"""Resume and drain: the dispatcher's policy for a call whose call actor is gone.

A call actor hands the dispatcher a checkpoint after each turn (``note``). When ``wait_end``
on it raises ``CallActorLost`` (process killed, node lost, out of memory), or it hands its
call over at a turn boundary because its node is draining, the dispatcher asks this policy
whether to carry the call on (``refusal``) and with what (``order``), takes a warm actor on
another live node and ``resume``s the call there. The call keeps its id, its admission slot
and its one record; the store gets an event ``resumed`` with the gap (``ResumeLog``). A call
not listening again within ``deadline_s`` of the loss ends as failed (``ResumeFailed``).

Draining (``voice-ai drain NODE``): no new call actor on the node, its idle ones retired, its
calls handed over at their next turn boundary, by the same mechanism (no bridging line).

Not resumed: browser calls (their WebRTC state, ICE and DTLS keys, lived in the lost
process; the page shows the call ended), calls resumed ``max_times`` already, and every call
when RESUME_CALLS is off.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from voice_ai.calls.deadline import within
from voice_ai.calls.journal import JournalStore
from voice_ai.config import Settings
from voice_ai.pipeline.checkpoint import (
    CheckpointError,
    ResumeCause,
    ResumeOrder,
    SavedCheckpoint,
    decode,
)
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import TurnTimings

__all__ = ["RESUMED_EVENT", "ResumeEvent", "ResumeFailed", "ResumeLog", "ResumePolicy",
           "ResumeStatus", "Resumption", "StoreResumeLog"]

logger = logging.getLogger("voice_ai.dispatcher")
RESUMED_EVENT = "resumed"  # the store's event kind (events table)
WEBRTC_NOT_RESUMED = ("a browser call is not resumed: its WebRTC connection (ICE, DTLS keys) "
                      "lived in the lost call actor, and the page shows the call ended")


class ResumeFailed(Exception):  # noqa: N818  # an outcome the supervisor records
    """The call could not be carried on; the message says why (it goes in the record)."""


@dataclass(frozen=True, slots=True)
class ResumePolicy:
    enabled: bool = True
    deadline_s: float = 10.0  # loss noticed -> listening again on a new actor
    max_times: int = 3
    # a warm actor on the lost actor's node answers this fast if its node is alive; when the
    # node is gone, Ray leaves calls to its actors pending until it declares the node dead
    # (seconds to tens of seconds), so the resume goes to a cold start instead of waiting
    same_node_probe_s: float = 2.0

    @classmethod
    def from_settings(cls, s: Settings) -> ResumePolicy:
        return cls(enabled=s.resume_calls, deadline_s=s.resume_deadline_s,
                   max_times=s.resume_max_times)


@dataclass(frozen=True, slots=True)
class ResumeEvent:
    """One call carried on by a new call actor (the store's ``resumed`` event)."""

    call_id: str
    cause: ResumeCause
    attempt: int  # 1 for the call's first resume
    lost_at: float  # unix s: the loss noticed (or the handover reached)
    listening_at: float  # unix s: the new actor listens to the caller again
    from_node: str
    to_node: str
    turns_restored: int

    @property
    def gap_s(self) -> float:
        return round(max(0.0, self.listening_at - self.lost_at), 3)

    def to_json(self) -> str:
        return json.dumps({"call_id": self.call_id, "cause": self.cause.value,
                           "attempt": self.attempt, "gap_s": self.gap_s,
                           "from_node": self.from_node[:12], "to_node": self.to_node[:12],
                           "turns_restored": self.turns_restored}, separators=(",", ":"))


class ResumeLog(Protocol):
    async def resumed(self, event: ResumeEvent) -> None:
        """Note ``event`` in the store (best effort, bounded)."""
        ...


class StoreResumeLog:
    """``ResumeLog`` over the store writer: one ``resumed`` event per resume."""

    def __init__(self, store: JournalStore) -> None:
        self._store = store

    async def resumed(self, event: ResumeEvent) -> None:
        outcome = await self._store.write_event(
            RESUMED_EVENT, "dispatcher", event.to_json(), event.listening_at,
            f"{RESUMED_EVENT}:{event.call_id}:{event.attempt}")
        if not outcome.ok:
            raise RuntimeError(f"resume not noted: {outcome.detail}")


@dataclass(frozen=True, slots=True)
class ResumeStatus:
    enabled: bool
    deadline_s: float
    resumed_total: int
    resume_failed_total: int
    handed_over_total: int
    stood_by_total: int  # hand-overs whose next call actor joined the line first
    last_gap_s: float | None
    checkpoints_held: int
    draining_nodes: tuple[str, ...]


class Resumption:
    """What the dispatcher keeps for resumes and drains: each live call's latest checkpoint,
    how often it was carried on, the draining nodes, and counters."""

    def __init__(self, policy: ResumePolicy, log: ResumeLog, *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self._log = log
        self._wall = wall_clock
        self._checkpoints: dict[str, SavedCheckpoint] = {}
        self._times: dict[str, int] = {}
        self._draining: set[str] = set()
        self.resumed_total = 0
        self.failed_total = 0
        self.handed_over_total = 0
        self.stood_by_total = 0
        self.last_gap_s: float | None = None

    # --- checkpoints ----------------------------------------------------------------------
    def note(self, saved: SavedCheckpoint) -> bool:
        """Keep ``saved`` if it is newer than the call's last one."""
        if not saved.newer_than(self._checkpoints.get(saved.call_id)):
            return False
        self._checkpoints[saved.call_id] = saved
        return True

    def latest(self, call_id: str) -> SavedCheckpoint | None:
        return self._checkpoints.get(call_id)

    def forget(self, call_id: str) -> None:
        """The call ended: nothing of it is kept."""
        self._checkpoints.pop(call_id, None)
        self._times.pop(call_id, None)

    def turns_of(self, call_id: str) -> tuple[TurnTimings, ...]:
        """The turns in the call's last checkpoint, for a record written without its actor."""
        saved = self._checkpoints.get(call_id)
        if saved is None:
            return ()
        try:
            return decode(saved, call_id=call_id).turns
        except CheckpointError as e:
            logger.warning("checkpoint unreadable", extra={"call_id": call_id, "error": str(e)})
            return ()

    # --- the decision -----------------------------------------------------------------------
    def refusal(self, spec: CallSpec) -> str | None:
        """Why ``spec``'s call is not carried on, or None when it is."""
        if not self.policy.enabled:
            return "RESUME_CALLS is off"
        if spec.webrtc_offer is not None:
            return WEBRTC_NOT_RESUMED
        times = self._times.get(spec.call_id, 0)
        if times >= self.policy.max_times:
            return f"carried on {times} times already (RESUME_MAX_TIMES={self.policy.max_times})"
        return None

    def order(self, call_id: str, cause: ResumeCause, lost_at: float,
              from_node: str) -> ResumeOrder:
        attempt = self._times.get(call_id, 0) + 1
        self._times[call_id] = attempt
        return ResumeOrder(cause, lost_at, self._checkpoints.get(call_id), attempt, from_node)

    def deadline_left(self, lost_at: float) -> float:
        return lost_at + self.policy.deadline_s - self._wall()

    async def resumed(self, event: ResumeEvent, timeout_s: float) -> None:
        self.resumed_total += 1
        self.last_gap_s = event.gap_s
        logger.warning("call resumed on a new call actor", extra={
            "call_id": event.call_id, "cause": event.cause.value, "gap_s": event.gap_s,
            "attempt": event.attempt, "turns_restored": event.turns_restored,
            "from_node": event.from_node[:12], "to_node": event.to_node[:12]})
        try:
            await within(self._log.resumed(event), timeout_s, "resume log")
        except Exception as e:  # the call goes on; the log line above still says it
            logger.warning("resumed event not stored", extra={
                "call_id": event.call_id, "error": f"{type(e).__name__}: {e}"})

    def failed(self, call_id: str, why: str) -> None:
        self.failed_total += 1
        logger.error("call not resumed", extra={"call_id": call_id, "error": why})

    # --- draining nodes ---------------------------------------------------------------------
    @property
    def draining(self) -> frozenset[str]:
        return frozenset(self._draining)

    def drain(self, node_id: str) -> bool:
        """True if the node was not draining yet."""
        new = node_id not in self._draining
        self._draining.add(node_id)
        return new

    def undrain(self, node_id: str) -> bool:
        if node_id not in self._draining:
            return False
        self._draining.discard(node_id)
        return True

    def status(self) -> ResumeStatus:
        return ResumeStatus(
            enabled=self.policy.enabled, deadline_s=self.policy.deadline_s,
            resumed_total=self.resumed_total, resume_failed_total=self.failed_total,
            handed_over_total=self.handed_over_total, stood_by_total=self.stood_by_total,
            last_gap_s=self.last_gap_s,
            checkpoints_held=len(self._checkpoints),
            draining_nodes=tuple(sorted(self._draining)))
