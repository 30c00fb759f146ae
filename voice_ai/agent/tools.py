"""The receptionist's function tools (livekit-agents ``@function_tool``), for every LLM path.

The same tools serve OpenAI (through the pool) and the local answering engine: AgentSession
runs them when the LLM streams a tool call. Arguments are validated by the front desk; a
request that cannot be met, or a failure behind a tool, becomes a ``ToolError`` whose message
is a sentence for the caller, so the LLM's next step apologises and offers a person
(``TOOL_ERROR_HINT`` in the instructions; the local engine does it by construction). Never a
silent turn.

Transfer and hang-up wait until the reply that announces them has been heard (the speech
handle is done), then act through the ``CallActions`` port.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import RunContext, function_tool, llm

from voice_ai.agent.actions import CallActions
from voice_ai.agent.desk import DeskError, FrontDesk

__all__ = ["TOOL_NAMES", "ReceptionistTools", "ToolRun"]

logger = logging.getLogger(__name__)

TOOL_NAMES = ("get_opening_hours", "find_free_slots", "book_appointment", "cancel_appointment",
              "move_appointment", "transfer_to_person", "end_call", "send_dtmf")
_DTMF = re.compile(r"^[0-9*#]{1,20}$")


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One tool the agent ran in this call (the eval reads these; never logged with args)."""

    name: str
    args: dict[str, str] = field(default_factory=dict)
    ok: bool = True
    at: float = 0.0  # wall clock, s


class ReceptionistTools:
    """Tools bound to one call's front desk and call actions. ``runs`` lists what ran."""

    def __init__(self, desk: FrontDesk, actions: CallActions,
                 clock: Callable[[], float] = time.time) -> None:
        self.desk = desk
        self.actions = actions
        self.runs: list[ToolRun] = []
        self._clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    def _ran(self, name: str, ok: bool = True, **args: str) -> None:
        self.runs.append(ToolRun(name, dict(args), ok, self._clock()))

    async def _guard(self, name: str, work: Callable[[], Awaitable[str]], **args: str) -> str:
        try:
            answer = await work()
        except DeskError as e:
            self._ran(name, False, **args)
            raise llm.ToolError(str(e)) from None
        except Exception as e:  # the book or the transport failed: say so, never go silent
            self._ran(name, False, **args)
            logger.warning("tool failed", extra={"tool": name, "error": type(e).__name__})
            raise llm.ToolError("I could not do that just now because of a technical "
                                "problem.") from None
        self._ran(name, True, **args)
        return answer

    def _after_reply(self, ctx: RunContext[Any], action: Callable[[], Awaitable[None]],
                     *, on_failure: str) -> None:
        """Run ``action`` once the reply announcing it has played (or was cut off); if it
        fails, say ``on_failure`` so the caller is not left waiting in silence."""

        def start(_: object) -> None:
            task = asyncio.get_running_loop().create_task(
                self._run_action(ctx, action, on_failure))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        ctx.speech_handle.add_done_callback(start)

    async def _run_action(self, ctx: RunContext[Any], action: Callable[[], Awaitable[None]],
                          on_failure: str) -> None:
        try:
            await action()
        except Exception as e:
            logger.warning("call action failed", extra={"error": type(e).__name__})
            try:
                ctx.session.say(on_failure)
            except RuntimeError:  # the session is already closing: nobody to tell
                pass

    def all(self) -> list[llm.Tool | llm.Toolset]:
        desk, actions = self.desk, self.actions
        profile = desk.profile

        @function_tool
        async def get_opening_hours(day: str = "") -> str:
            """Tell the caller when the business is open.

            Args:
                day: monday..sunday, today, tomorrow or YYYY-MM-DD; empty for the whole week.
            """
            return await self._guard("get_opening_hours", lambda: _now(desk.opening_hours(day)),
                                     day=day)

        @function_tool
        async def find_free_slots(day: str, part_of_day: str = "") -> str:
            """List free appointment times on a day.

            Args:
                day: monday..sunday, today, tomorrow or YYYY-MM-DD.
                part_of_day: morning, afternoon, evening, or empty for the whole day.
            """
            return await self._guard("find_free_slots", lambda: desk.free_slots(day, part_of_day),
                                     day=day, part_of_day=part_of_day)

        @function_tool
        async def book_appointment(day: str, time: str, service: str = "",
                                   caller_name: str = "") -> str:
            """Book an appointment.

            Args:
                day: monday..sunday, today, tomorrow or YYYY-MM-DD.
                time: start time as HH:MM (24 h), e.g. 14:30.
                service: one of the services offered; empty for a check-up.
                caller_name: the caller's name if they gave it.
            """
            return await self._guard("book_appointment",
                                     lambda: desk.book(day, time, service, caller_name),
                                     day=day, time=time, service=service,
                                     caller_name=caller_name)

        @function_tool
        async def cancel_appointment(day: str, time: str) -> str:
            """Cancel the caller's appointment.

            Args:
                day: the appointment's day: monday..sunday, today, tomorrow or YYYY-MM-DD.
                time: the appointment's start time as HH:MM (24 h).
            """
            return await self._guard("cancel_appointment", lambda: desk.cancel(day, time),
                                     day=day, time=time)

        @function_tool
        async def move_appointment(day: str, time: str, new_day: str, new_time: str) -> str:
            """Move the caller's appointment to another day or time.

            Args:
                day: the current appointment's day.
                time: the current appointment's start time as HH:MM (24 h).
                new_day: the new day: monday..sunday, today, tomorrow or YYYY-MM-DD.
                new_time: the new start time as HH:MM (24 h).
            """
            return await self._guard("move_appointment",
                                     lambda: desk.move(day, time, new_day, new_time),
                                     day=day, time=time, new_day=new_day, new_time=new_time)

        @function_tool
        async def transfer_to_person(ctx: RunContext[Any]) -> str:
            """Put the caller through to a person at the business (when they ask for a
            person, a human, someone, or when you cannot help)."""
            self._ran("transfer_to_person")
            self._after_reply(ctx, lambda: actions.transfer(profile.transfer_number),
                              on_failure="I am sorry, I could not put you through just now. "
                                         "Please call back a little later.")
            return "I am putting you through to a colleague now, please hold."

        @function_tool
        async def end_call(ctx: RunContext[Any]) -> str:
            """End the call politely when the caller says goodbye or has nothing more."""
            self._ran("end_call")
            self._after_reply(ctx, actions.hang_up, on_failure="Goodbye!")
            return f"Thank you for calling {profile.name}. Goodbye!"

        @function_tool
        async def send_dtmf(digits: str) -> str:
            """Press keys on the phone keypad (to get through a phone menu).

            Args:
                digits: the keys to press: 0-9, * and #.
            """
            if not _DTMF.match(digits.strip()):
                self._ran("send_dtmf", False, digits=digits)
                raise llm.ToolError(f"{digits!r} are not keypad keys (0-9, * or #).")
            return await self._guard("send_dtmf", lambda: _pressed(actions, digits.strip()),
                                     digits=digits.strip())

        return [get_opening_hours, find_free_slots, book_appointment, cancel_appointment,
                move_appointment, transfer_to_person, end_call, send_dtmf]


async def _now(text: str) -> str:  # the desk's synchronous answers, as awaitables
    return text


async def _pressed(actions: CallActions, digits: str) -> str:
    await actions.send_dtmf(digits)
    return f"Pressed {' '.join(digits)}."
