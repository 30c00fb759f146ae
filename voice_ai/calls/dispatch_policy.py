"""``DispatchPolicy``: the dispatcher's limits and deadlines, mapped once from the settings.

It decides how many calls run at once, how many prepared call actors wait, how often one is
reused, and how long every wait that crosses a process may take (prepare, begin, a call, a
reply, the journal, the busy message), and how refill backs off. The dispatcher, its refill
(``voice_ai.calls.refill``) and its carrier (``voice_ai.calls.carry_on``) all read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from voice_ai.config import Settings

__all__ = ["DispatchPolicy"]


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """Limits and deadlines, in seconds. ``from_settings`` maps the knobs."""

    max_concurrent_calls: int
    warm_target: int
    max_calls_per_actor: int
    prepare_timeout_s: float = 60.0  # start + prepare a call actor (a cold start takes ~6 s)
    begin_timeout_s: float = 15.0  # hand a call to a prepared actor
    call_deadline_s: float = 660.0  # admission -> end; past it the actor is stopped
    reply_timeout_s: float = 5.0  # info / reset / stats of an actor, the telemetry hub
    journal_timeout_s: float = 5.0
    busy_concurrency: int = 8
    busy_queue: int = 256
    busy_play_timeout_s: float = 20.0
    refill_backoff_s: float = 1.0
    refill_backoff_max_s: float = 30.0
    refill_attempts: int = 3  # failed rounds in a row before refill waits for the next kick
    keep_finished: int = 1000  # finished calls whose record ``wait_call`` can still return
    recovery_lookback_s: float = 1320.0  # admissions this old are looked for at recovery
    spare_max_idle_s: float = 0.0  # idle spares older than this are replaced (0: never)
    pack_spares: bool = False  # CALL_ACTOR_PLACEMENT=pack: spares go where calls run (pack_onto)

    @classmethod
    def from_settings(cls, s: Settings) -> DispatchPolicy:
        deadline = s.max_call_duration_s + s.call_end_grace_s
        return cls(
            max_concurrent_calls=s.max_concurrent_calls,
            warm_target=s.warm_call_actors,
            max_calls_per_actor=s.call_actor_max_calls,
            prepare_timeout_s=s.call_actor_prepare_timeout_s,
            begin_timeout_s=s.call_begin_timeout_s,
            call_deadline_s=deadline,
            reply_timeout_s=s.actor_reply_timeout_s,
            journal_timeout_s=s.actor_reply_timeout_s,
            busy_concurrency=s.busy_message_concurrency,
            busy_play_timeout_s=s.busy_message_timeout_s,
            recovery_lookback_s=2 * deadline,
            spare_max_idle_s=s.warm_spare_max_idle_s,
            pack_spares=s.call_actor_placement == "pack",
        )
