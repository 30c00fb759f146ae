"""When a call may be handed over to another call actor (a drain): the next turn boundary.

``CallSession.run`` with ``handover`` set waits for ``turn_boundary`` and then leaves the
caller's line to the actor standing by (docs/resilience.md, "Drain for deploys")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from livekit.agents import AgentSession

from voice_ai.pipeline.transport import CallTransport

__all__ = ["HANDOVER_NOISY_LINE_S", "HANDOVER_OPEN_TURN_S", "HANDOVER_QUIET_S", "OpenTurn",
           "turn_boundary"]

HANDOVER_QUIET_S = 0.6  # a handover waits for this long with the session idle, the line silent
HANDOVER_NOISY_LINE_S = 10.0  # after this long a line never silent (room noise) holds it no more
HANDOVER_OPEN_TURN_S = 10.0  # caller speech that never became a turn holds it no longer


class OpenTurn:
    """Whether the caller has spoken since the session last took a turn from them: speech the
    VAD heard whose transcript (and so the user's turn) is not in yet. The session looks idle
    then (the caller stopped, the agent listens), and a hand-over there loses the line."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: float | None = None

    def on_user_state(self, ev: Any) -> None:
        if ev.new_state == "speaking" and self._since is None:
            self._since = self._clock()

    def on_agent_state(self, ev: Any) -> None:
        if ev.new_state in ("thinking", "speaking"):  # the agent took the turn
            self._since = None

    def taken(self) -> None:
        self._since = None

    def holds(self) -> bool:
        """An open turn holds a hand-over back, for ``HANDOVER_OPEN_TURN_S`` at most (noise
        the VAD took for speech never becomes a turn)."""
        return self._since is not None and self._clock() - self._since < HANDOVER_OPEN_TURN_S


async def turn_boundary(session: AgentSession[Any], transport: CallTransport,
                         open_turn: OpenTurn) -> None:
    """Return at the call's next turn boundary: for ``HANDOVER_QUIET_S`` the session idle (the
    caller not speaking and no line of theirs waiting for its transcript, the agent listening
    with no reply scheduled or playing and no tool running) and the line silent both ways (the
    caller's sound before the VAD calls it speech, the agent's audio still playing out).

    Not the moment the agent's reply joins the chat (it once was): livekit adds that message
    before the reply's tool calls run and their follow-up reply is spoken, and a hand-over
    there cut the follow-up and left the caller waiting on it. A line that never falls silent
    (room noise above the watchdog's caller-sound level) holds the hand-over back only for
    ``HANDOVER_NOISY_LINE_S``; the session's own state still must be idle."""
    watchdog = transport.watchdog
    asked = idle_since = time.monotonic()
    while True:
        now = time.monotonic()
        if (session.user_state == "speaking" or session.agent_state != "listening"
                or session.current_speech is not None or open_turn.holds()):
            idle_since = now
        line_silent = (watchdog is None or watchdog.quiet_s() >= HANDOVER_QUIET_S
                       or now - asked >= HANDOVER_NOISY_LINE_S)
        if now - idle_since >= HANDOVER_QUIET_S and line_silent:
            return
        await asyncio.sleep(0.05)
