"""The admission journal: each admitted call noted in the store until its record is there.

At admission the dispatcher writes an event ``call_admitted`` (id ``admitted:<call id>``,
detail: a small JSON of ``AdmittedCall``); the store deletes it in the same transaction that
commits the call's record. So after a dispatcher restart, a journaled admission with no record
and no live call actor is a call that was lost while nobody watched: it is recorded as failed
(``node_lost``) with a *provisional* error text, which the call's own record replaces if it
turns up later from a spool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from voice_ai.calls.ports import CallTicket
from voice_ai.records import CallDirection
from voice_ai.store.call_store import ADMITTED_PREFIX, EventKind
from voice_ai.store.outcome import WriteOutcome

__all__ = ["AdmittedCall", "JournalStore", "StoreJournal"]


@dataclass(frozen=True, slots=True)
class AdmittedCall:
    call_id: str
    key: str
    direction: CallDirection
    caller_masked: str
    admitted_at: float
    warm: bool

    @classmethod
    def of(cls, ticket: CallTicket) -> AdmittedCall:
        spec = ticket.spec
        return cls(spec.call_id, ticket.key, ticket.direction, spec.caller_masked,
                   spec.admitted_at, spec.warm)

    def to_json(self) -> str:
        return json.dumps({"call_id": self.call_id, "key": self.key,
                           "direction": self.direction.value, "caller": self.caller_masked,
                           "admitted_at": self.admitted_at, "warm": self.warm},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AdmittedCall:
        d = json.loads(text)
        return cls(str(d["call_id"]), str(d["key"]), CallDirection(d["direction"]),
                   str(d.get("caller", "")), float(d["admitted_at"]), bool(d.get("warm")))


class JournalStore(Protocol):
    async def write_event(self, kind: str, component: str, detail: str, ts: float,
                          event_id: str) -> WriteOutcome: ...

    async def open_admissions(self, since: float) -> list[str]: ...


class StoreJournal:
    """``AdmissionJournal`` over the store writer."""

    def __init__(self, store: JournalStore) -> None:
        self._store = store

    async def admitted(self, ticket: CallTicket, at: float) -> None:
        outcome = await self._store.write_event(
            EventKind.CALL_ADMITTED, "dispatcher", AdmittedCall.of(ticket).to_json(), at,
            ADMITTED_PREFIX + ticket.call_id)
        if not outcome.ok:
            raise RuntimeError(f"admission not journaled: {outcome.detail}")

    async def unfinished(self, since: float) -> list[AdmittedCall]:
        calls = []
        for detail in await self._store.open_admissions(since):
            try:
                calls.append(AdmittedCall.from_json(detail))
            except (ValueError, KeyError, TypeError):
                continue  # not ours to judge: a malformed row is left for a person
        return calls
