"""Recovery after a dispatcher restart: the call actors outlive the dispatcher (they are
detached and named), so a new one adopts them, and admissions left without a record are
recorded as lost.

``recover`` asks every call actor what it is doing (``info``) and hands each to the
dispatcher's ``Adoption``: an idle one back into the warm pool, a running call back into
admission and supervision, an ended one to be recycled. Admissions wait (``ready``) only for
the actors that answer within ``reply_timeout_s``; a slower one (still starting, or busy) is
adopted when it answers, within ``prepare_timeout_s``, and only one that does not answer at
all is stopped. Last, admissions journaled with no record and no live call are recorded
``node_lost``. What to do with each actor is decided here; the dispatcher only applies it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from voice_ai.calls.deadline import DeadlineExceeded, within
from voice_ai.calls.dispatch_policy import DispatchPolicy
from voice_ai.calls.ports import (
    ActorInfo,
    ActorPhase,
    AdmissionJournal,
    CallActorFactory,
    CallActorPort,
)
from voice_ai.records import CallRecord, EndReason
from voice_ai.store.call_store import PROVISIONAL_PREFIX

__all__ = ["LOST_ERROR", "Adoption", "RecoveryReport", "recover"]

logger = logging.getLogger("voice_ai.dispatcher")
LOST_ERROR = "call actor lost (node or process died)"


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    adopted_idle: int = 0
    adopted_busy: int = 0
    adopted_ended: int = 0
    unreachable: int = 0
    lost_admissions: int = 0
    ready_after_s: float = 0.0  # from the start of recovery until admissions went on


class Adoption(Protocol):
    """What recovery asks of the dispatcher."""

    def adopt_idle(self, actor: CallActorPort, info: ActorInfo) -> None:
        """A prepared actor with no call: into the warm pool."""
        ...

    def adopt_busy(self, actor: CallActorPort, info: ActorInfo) -> None:
        """An actor running a call (``info.ticket``) that is not supervised yet."""
        ...

    def adopt_ended(self, actor: CallActorPort, info: ActorInfo) -> None:
        """An actor whose call ended (``info.end``) and was not reset: recycle it."""
        ...

    def is_live(self, call_id: str) -> bool:
        """The call is supervised already (adopted, or admitted since the restart)."""
        ...

    async def record_lost(self, record: CallRecord) -> None:
        """Store and report the record of an admitted call nobody carries."""
        ...


async def recover(factory: CallActorFactory, journal: AdmissionJournal,
                  policy: DispatchPolicy, adoption: Adoption, *, ready: asyncio.Event,
                  wall_clock: Callable[[], float]) -> RecoveryReport:
    """Adopt the call actors that exist now, set ``ready`` once admissions may go on, and
    record the lost admissions (see the module docstring)."""
    counts: dict[str, int] = {}
    slow: list[CallActorPort] = []
    started = wall_clock()
    try:
        t = policy.reply_timeout_s
        actors = await within(factory.existing(), policy.prepare_timeout_s,
                              "call actor listing")
        infos = await asyncio.gather(
            *(within(a.info(), t, f"info of {a.name}") for a in actors),
            return_exceptions=True)
        for actor, info in zip(actors, infos, strict=True):
            if isinstance(info, ActorInfo):
                kind = _adopt(actor, info, adoption)
            elif isinstance(info, DeadlineExceeded):
                slow.append(actor)
                continue
            else:  # gone (or broken): stop what is left of it
                actor.retire()
                kind = "unreachable"
            counts[kind] = counts.get(kind, 0) + 1
    except Exception as e:  # no listing: admissions go on; nothing adopted now
        logger.error("dispatcher recovery failed", extra={"error": f"{type(e).__name__}: {e}"})
    finally:
        ready_at = wall_clock()
        ready.set()
    for kind in await asyncio.gather(*(_adopt_late(a, policy, adoption) for a in slow)):
        counts[kind] = counts.get(kind, 0) + 1
    report = RecoveryReport(counts.get("idle", 0), counts.get("busy", 0),
                            counts.get("ended", 0), counts.get("unreachable", 0),
                            await _record_lost_admissions(journal, policy, adoption,
                                                          wall_clock),
                            round(ready_at - started, 3))
    found = (report.adopted_idle, report.adopted_busy, report.adopted_ended,
             report.unreachable, report.lost_admissions)
    logger.log(logging.WARNING if any(found) else logging.INFO, "dispatcher recovered",
               extra=asdict(report))
    return report


async def _adopt_late(actor: CallActorPort, policy: DispatchPolicy, adoption: Adoption) -> str:
    try:
        info = await within(actor.info(), policy.prepare_timeout_s, f"info of {actor.name}")
    except Exception:
        actor.retire()
        return "unreachable"
    return _adopt(actor, info, adoption)


def _adopt(actor: CallActorPort, info: ActorInfo, adoption: Adoption) -> str:
    if info.phase is ActorPhase.IDLE:
        adoption.adopt_idle(actor, info)
        return "idle"
    if info.phase is ActorPhase.BUSY and info.ticket is not None:
        if not adoption.is_live(info.ticket.call_id):
            adoption.adopt_busy(actor, info)
        return "busy"
    if info.end is not None:
        adoption.adopt_ended(actor, info)
        return "ended"
    actor.retire()
    return "unreachable"


async def _record_lost_admissions(journal: AdmissionJournal, policy: DispatchPolicy,
                                  adoption: Adoption, wall_clock: Callable[[], float]) -> int:
    since = wall_clock() - policy.recovery_lookback_s
    try:
        open_tickets = await within(journal.unfinished(since), policy.journal_timeout_s,
                                    "admission journal")
    except Exception as e:
        logger.warning("admission journal not read at recovery", extra={
            "error": f"{type(e).__name__}: {e}"})
        return 0
    lost = [t for t in open_tickets if not adoption.is_live(t.call_id)]
    for call in lost:
        await adoption.record_lost(CallRecord(
            call_id=call.call_id, direction=call.direction, started_at=call.admitted_at,
            ended_at=wall_clock(), end_reason=EndReason.NODE_LOST,
            caller_masked=call.caller_masked, warm_start=call.warm,
            error=f"{PROVISIONAL_PREFIX}{LOST_ERROR} while the dispatcher was restarting"))
    return len(lost)
