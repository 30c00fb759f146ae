"""The warm-pool policy: how many prepared call actors to keep, and which to reuse.

Starting a call actor costs ~6 CPU-seconds (imports, VAD, pool connections), so:

- ``target`` (WARM_CALL_ACTORS) prepared actors wait idle; a new call takes one.
- An actor whose call **completed** comes back to the pool until it has served
  ``max_calls`` (CALL_ACTOR_MAX_CALLS) calls; one whose call failed retires (its state is
  suspect), as does one that finds the pool already full.
- Refill counts the actors that will come back. With no call in progress it also keeps the
  idle ones at half the target at least, rounded down (a pool of one keeps no floor, so its
  actor is reused rather than replaced after every call).
- Under load (calls in progress) only actors that will **not** come back are replaced (and a
  resume's reserve kept), **one at a time**: a cold start takes ~6-10 CPU-seconds from the
  live calls on the same cores. The operator sizes WARM_CALL_ACTORS for the expected burst;
  when a burst takes them all, the actors come back as its calls end. (Topping up to half the
  target during the burst started 4 cold actors beside 8 live calls on 2 cores.) Idle, the
  whole shortfall starts at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from voice_ai.calls.ports import CallActorPort

__all__ = ["ActorCounts", "Spare", "WarmPool", "resume_reserve", "spread_from"]


@dataclass
class Spare:
    """A call actor and how many calls it has served (begun) so far."""

    actor: CallActorPort
    node_id: str
    calls: int = 0
    idle_since: float = 0.0  # wall clock when it last went idle (``take_stale``)


@dataclass(slots=True)
class ActorCounts:
    """Call actors started, reused and lost, and prepares that failed, since the dispatcher
    started (its ``status``). One instance, shared by the dispatcher, its refill and its
    carrier: each counts what it does."""

    started: int = 0
    reused: int = 0
    lost: int = 0
    prepare_failures: int = 0


def resume_reserve(call_nodes: set[str]) -> int:
    """Idle call actors to keep for resumes while calls run on ``call_nodes`` (unknown
    nodes, ``""``, do not count): one while the calls share a node, kept off it by the refill
    (``spread_from``); two once they run on several, which the refill puts on two nodes, so
    losing any one node leaves a warm actor for a call it held. (With one reserve sitting on
    the lost node, a call in a test waited 25 s for a cold start.)"""
    return 2 if len(call_nodes - {""}) > 1 else 1


def spread_from(spares: list[Spare], call_nodes: set[str], *, busy: bool) -> frozenset[str]:
    """Nodes a new idle actor should preferably stay off while calls run: those holding idle
    actors already (the reserve spreads), and the calls' node while they share one. None
    when no call runs: the pool goes where the placement policy puts it."""
    if not busy:
        return frozenset()
    off = {s.node_id for s in spares}
    known = call_nodes - {""}
    if len(known) == 1:
        off |= known
    return frozenset(off - {""})


def pack_onto(call_nodes: set[str], home: str) -> frozenset[str]:
    """With pack placement, the nodes a new idle actor should preferably go to: the
    dispatcher's own node (``home``: it stays up whatever the load) and the nodes where calls
    run. A spare that Ray's default strategy would put on a node a burst brought up (it
    leaves a node once its busiest resource is half used, and the head's CPU is mostly the
    pools') kept that node alive after the burst; packed here, the node empties once its
    calls are over and the autoscaler removes it. Empty (no preference) when ``home`` is
    unknown and no call runs."""
    return frozenset((call_nodes | {home}) - {""})


class WarmPool:
    def __init__(self, target: int, max_calls: int) -> None:
        if target < 0 or max_calls < 1:
            raise ValueError(f"warm pool needs target >= 0 and max_calls >= 1, got {target}, "
                             f"{max_calls}")
        self.target = target
        self.max_calls = max_calls
        self._idle: deque[Spare] = deque()
        self.returning = 0  # actors in a call that will come back to the pool
        self.starting = 0  # actors being started and prepared now

    @property
    def idle(self) -> int:
        return len(self._idle)

    def spares(self) -> list[Spare]:
        return list(self._idle)

    def take(self, avoid: frozenset[str] = frozenset()) -> Spare | None:
        """A prepared actor for a new call, on none of the nodes in ``avoid`` (draining, or the
        one a call was just lost on), or None (the call then starts a cold one)."""
        for spare in self._idle:
            if spare.node_id not in avoid:
                self._idle.remove(spare)
                return spare
        return None

    def remove_on(self, node_id: str) -> list[Spare]:
        """Remove and return the idle actors on ``node_id`` (it is being drained)."""
        gone = [s for s in self._idle if s.node_id == node_id]
        self._idle = deque(s for s in self._idle if s.node_id != node_id)
        return gone

    def add(self, spare: Spare) -> None:
        """A newly prepared (or adopted idle) actor."""
        self._idle.append(spare)

    def call_started(self, spare: Spare) -> bool:
        """``spare`` takes a call. Returns whether it may serve again afterwards."""
        spare.calls += 1
        reusable = spare.calls < self.max_calls
        self.returning += reusable
        return reusable

    def call_finished(self, spare: Spare, *, reusable: bool, completed: bool,
                      reserve: int = 0) -> bool:
        """The call on ``spare`` ended. True: reset it and ``put_back``; False: retire it.
        A True answer keeps counting it as returning until ``put_back`` / ``lost_back``.

        ``reserve``: idle actors that must stay idle while calls run (a resume's). The next
        call would leave ``idle - 1``; if that is under the reserve a new actor starts for it,
        so the pool keeps up to ``reserve + 1`` rather than retire this one and start another
        for every call (a pool of one with resume on did exactly that)."""
        keep = max(self.target, reserve + 1) if self.target > 0 and reserve > 0 else self.target
        back = reusable and completed and self.idle < keep
        if reusable and not back:
            self.returning -= 1
        return back

    def put_back(self, spare: Spare) -> None:
        self.returning -= 1
        self._idle.append(spare)

    def lost_back(self) -> None:
        """An actor promised back could not be reset; it retires instead."""
        self.returning -= 1

    def take_stale(self, idle_before: float) -> list[Spare]:
        """Remove and return the spares idle since before ``idle_before`` (to be retired and
        replaced: a replacement goes where the scheduler packs actors now, so spares do not
        hold a node that a burst brought up and that the autoscaler could remove)."""
        stale = [s for s in self._idle if s.idle_since < idle_before]
        self._idle = deque(s for s in self._idle if s.idle_since >= idle_before)
        return stale

    def to_start(self, *, busy: bool, reserve: int = 0) -> int:
        """How many actors to start now. ``busy``: calls are in progress (no half-target floor,
        one start at a time). ``reserve``: idle actors to keep whatever comes back (a call whose
        actor dies is resumed on an idle one: its own never comes back)."""
        floor = reserve if busy else max(self.target // 2, reserve)
        missing = max(self.target - self.idle - self.returning, floor - self.idle)
        missing -= self.starting
        if missing <= 0:
            return 0
        if busy:  # one at a time under load
            return 1 if self.starting == 0 else 0
        return missing
