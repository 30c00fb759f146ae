"""The caller host's side of a phone line: simulated callers waiting for their calls.

A ``LineExchange`` (in the cluster inside the ``CallerHost`` actor) puts a simulated caller on a
line when a call dials it (``CallerOrder``) and listens on a loopback TCP socket; the call
reaches its caller there with a ``LineTransport`` (``voice_ai.pipeline.line``), over the wire
of ``voice_ai.pipeline.line_wire``.

Dialling is idempotent per call id, and a new leg replaces the old one: a call actor that
dies leaves its caller on the line (hearing silence, as a phone caller would), and a new call
actor that connects to the same ``LineAddress`` carries the call on.

A planned hand-over (a drain) is make-before-break: the next call actor connects a leg that
*stands by* (``HELLO`` with ``"standby": true``) while the old leg still carries the call. It
hears nothing yet; the moment the old leg leaves, it becomes the line's leg and the caller's
frames go to it, so what the caller says while the next actor restores the call waits in its
socket instead of being lost in the gap (as agents joining a LiveKit room before the old one
leaves would hear it).

Each caller is an ordinary ``SimulatedCaller``: it keeps its own timing marks (when it stopped
speaking, when it first heard the agent), its recording and its record of transfers and DTMF,
and sends its marks to the call as they change, so the call's turns carry the caller's truth.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit.agents import tts

from voice_ai.pipeline.line import CallerOrder, LineAddress
from voice_ai.pipeline.line_wire import (
    Leg,
    MessageKind,
    pack,
    pack_json,
    read_message,
    unpack_audio,
)
from voice_ai.pipeline.recorder import ConversationRecorder
from voice_ai.pipeline.simulated import CallerVoice, PhoneAudioOutput, SimulatedCaller
from voice_ai.records import EndReason

__all__ = ["CallerLineInfo", "LineExchange", "LineStatus"]

log = logging.getLogger("voice_ai.line")


@dataclass(frozen=True, slots=True)
class LineStatus:
    lines: int  # callers on the exchange (live or just ended)
    live: int  # callers whose call has not ended
    legs: int  # call legs carrying a call now
    standing_by: int  # legs connected ahead of a hand-over
    dialled_total: int
    reconnects_total: int  # a leg that replaced an earlier one (a resumed call)
    replies_cut_total: int  # agent replies whose leg left before their end (a died actor)


@dataclass(frozen=True, slots=True)
class CallerLineInfo:
    """One caller on the exchange (tests and operators: is the caller still there?)."""

    call_id: str
    live: bool  # the caller has not hung up
    leg_connected: bool
    standing_by: bool  # a leg waits to take the call over (a drain's next call actor)
    legs_total: int  # legs that have connected to this line (2+: the call was taken over)
    lines_spoken: int
    replies_cut: int  # agent replies whose leg left before their end


class _CallerLine:
    """One simulated caller on the exchange, and the leg to its call (if one is connected)."""

    def __init__(self, order: CallerOrder, caller: SimulatedCaller, token: str) -> None:
        self.order = order
        self.caller = caller
        self.token = token
        self.leg: Leg | None = None
        self.standby: Leg | None = None  # takes over the moment ``leg`` leaves
        self.legs = 0  # legs that have carried the call so far
        self.replies_cut = 0
        self.ready: asyncio.Task[None] = asyncio.create_task(caller.prepare())
        self.started = False
        self.ending: dict[str, Any] | None = None  # the ENDED body, once the call is over
        self.orphaned: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self._sent_marks: tuple[int, int] = (0, 0)

    def spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def marks(self) -> list[list[Any]]:
        """Every mark so far (a new leg gets the whole history)."""
        self._sent_marks = self.caller.marks_version
        return [[m.ended_speaking_at, m.text, m.agent_audio_at]
                for m in self.caller.speech_marks()]

    def marks_message(self, *, force: bool = False) -> bytes | None:
        if self.caller.marks_version == self._sent_marks and not force:
            return None
        return pack_json(MessageKind.MARKS, self.marks())


class LineExchange:
    """Hosts simulated callers and the socket their calls connect to (the caller host).

    ``voice`` speaks the callers' lines (the Piper pool in the cluster). A caller whose call
    has no leg for ``orphan_timeout_s`` (its call actor died and nobody reconnected) hangs up.
    An ended caller stays ``keep_ended_s`` so a late leg still learns how the call ended.
    """

    def __init__(self, voice: CallerVoice | tts.TTS[Any], *, host: str = "127.0.0.1",
                 advertise_host: str | None = None, recordings_dir: Path | None = None,
                 orphan_timeout_s: float = 30.0, keep_ended_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._voice = voice
        self._host = host
        self._advertise = advertise_host or host
        self._recordings = recordings_dir
        self._orphan_timeout_s = orphan_timeout_s
        self._keep_ended_s = keep_ended_s
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._port = 0
        self._lines: dict[str, _CallerLine] = {}
        self._dialled = 0
        self._reconnects = 0
        self._replies_cut = 0

    async def start(self) -> LineExchange:
        if self._server is None:
            self._server = await asyncio.start_server(self._on_leg, self._host, 0)
            self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    @property
    def port(self) -> int:
        return self._port

    async def dial(self, order: CallerOrder) -> LineAddress:
        """Put a caller on a line for ``order.call_id`` (or return the line it is already on)."""
        await self.start()
        line = self._lines.get(order.call_id)
        if line is None:
            recorder = ConversationRecorder() if order.record_audio else None
            caller = SimulatedCaller(order.scenario, self._voice, recorder=recorder,
                                     clock=self._clock, direction=order.direction,
                                     caller_masked=order.caller_masked)
            line = _CallerLine(order, caller, secrets.token_hex(16))
            self._lines[order.call_id] = line
            self._dialled += 1
            self._watch_orphan(line)
        return LineAddress(self._advertise, self._port, order.call_id, line.token)

    def status(self) -> LineStatus:
        lines = list(self._lines.values())
        return LineStatus(lines=len(lines), live=sum(1 for ln in lines if ln.ending is None),
                          legs=sum(1 for ln in lines if ln.leg is not None),
                          standing_by=sum(1 for ln in lines if ln.standby is not None),
                          dialled_total=self._dialled, reconnects_total=self._reconnects,
                          replies_cut_total=self._replies_cut)

    def line_info(self, call_id: str) -> CallerLineInfo | None:
        line = self._lines.get(call_id)
        if line is None:
            return None
        return CallerLineInfo(call_id, live=line.ending is None,
                              leg_connected=line.leg is not None,
                              standing_by=line.standby is not None, legs_total=line.legs,
                              lines_spoken=len(line.caller.speech_marks()),
                              replies_cut=line.replies_cut)

    def caller(self, call_id: str) -> SimulatedCaller:
        """The caller of ``call_id`` (tests read what it heard and did)."""
        return self._lines[call_id].caller

    async def aclose(self) -> None:
        for line in list(self._lines.values()):
            await self._drop(line)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # --- legs ----------------------------------------------------------------------------
    async def _on_leg(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        leg = Leg(reader, writer)
        try:
            line = await self._greet(leg)
            if line is not None:
                await self._serve(line, leg)
        except Exception:
            log.exception("line leg failed")
        finally:
            await leg.close()

    async def _greet(self, leg: Leg) -> _CallerLine | None:
        hello = await read_message(leg.reader)
        if hello is None or hello[0] is not MessageKind.HELLO:
            return None
        try:
            body = json.loads(hello[1])
            call_id, token = str(body["call_id"]), str(body["token"])
            standby = bool(body.get("standby", False))
        except (ValueError, KeyError, TypeError):
            return None
        line = self._lines.get(call_id)
        if line is None or not hmac.compare_digest(line.token, token):
            log.warning("line leg refused", extra={"reason": "unknown call or token"})
            return None
        await line.ready
        if line.ending is not None:  # the caller already hung up: say so, and nothing else
            leg.send(pack_json(MessageKind.ENDED, line.ending))
            return None
        # WELCOME goes first, then the leg is the line's: the pump (the caller's audio and
        # marks) sends on ``line.leg``, and a frame ahead of WELCOME is a refusal to the call
        # (a takeover while the old leg was still closing, under load, hit that)
        leg.send(pack_json(MessageKind.WELCOME, {"direction": line.order.direction.value,
                                       "caller_masked": line.order.caller_masked,
                                       "marks": line.marks()}))
        if standby and line.leg is not None:  # make-before-break: it waits for the old leg
            earlier, line.standby = line.standby, leg
            log.info("caller line: a leg stands by", extra={"call_id": call_id})
            if earlier is not None:
                await earlier.close()
            return line
        old, line.leg = line.leg, leg
        self._carried_by_new_leg(line)
        if old is not None:
            await old.close()
        return line

    def _carried_by_new_leg(self, line: _CallerLine) -> None:
        line.legs += 1
        if line.legs > 1:  # a new call actor took over the call (the old one died or left)
            self._reconnects += 1
            log.info("caller line reconnected", extra={"call_id": line.order.call_id})

    def _left(self, line: _CallerLine, leg: Leg) -> None:
        """``leg`` closed. The line's leg: the leg standing by carries the call from this
        moment (its marks first), else the caller waits on the line (the orphan clock)."""
        if line.standby is leg:
            line.standby = None
            return
        if line.leg is not leg:  # replaced already
            return
        self._end_cut_reply(line)
        line.leg, line.standby = line.standby, None
        if line.leg is None:
            self._watch_orphan(line)
            return
        self._carried_by_new_leg(line)
        marks = line.marks_message(force=True)
        if marks is not None:
            line.leg.send(marks)

    def _end_cut_reply(self, line: _CallerLine) -> None:
        """The leg that carried the agent's voice is gone mid-reply (no flush came): what
        arrived plays out and the reply ends there, as on a phone, where the caller hears the
        voice stop and speaks. Counted and logged: a hand-over at a turn boundary never cuts a
        reply; an actor that died mid-reply does."""
        output = line.caller.audio_output
        if line.ending is None and isinstance(output, PhoneAudioOutput) and output.open_segment:
            line.replies_cut += 1
            self._replies_cut += 1
            log.warning("caller line: the agent's reply was cut by its leg leaving",
                        extra={"call_id": line.order.call_id})
            output.flush()

    async def _serve(self, line: _CallerLine, leg: Leg) -> None:
        caller = line.caller
        output = caller.audio_output
        while (message := await read_message(leg.reader)) is not None:
            kind, payload = message
            if kind is MessageKind.AGENT_AUDIO:
                await output.capture_frame(unpack_audio(payload))
            elif kind is MessageKind.AGENT_FLUSH:
                output.flush()
            elif kind is MessageKind.AGENT_CLEAR:
                output.clear_buffer()
            elif kind is MessageKind.START and not line.started:
                line.started = True
                await caller.connect()
                line.spawn(self._pump(line), "line-pump")
                line.spawn(self._await_end(line), "line-end")
            elif kind is MessageKind.ACTION:
                await self._act(line, json.loads(payload))
        self._left(line, leg)

    async def _act(self, line: _CallerLine, action: dict[str, Any]) -> None:
        caller = line.caller
        if "transfer" in action:
            await caller.transfer(str(action["transfer"]))
        elif "dtmf" in action:
            await caller.send_dtmf(str(action["dtmf"]))
        elif action.get("hangup"):
            await caller.hangup()
            if not line.started and line.ending is None:  # before the call began
                line.spawn(self._finish(line, EndReason.AGENT_HANGUP), "line-end")

    async def _pump(self, line: _CallerLine) -> None:
        """The caller's frames down the line at real-time pace (dropped while no leg is
        connected, as a phone line drops what nobody hears), and its marks when they change."""
        caller = line.caller
        try:
            while True:
                pcm = await caller.next_caller_pcm()
                leg = line.leg
                if leg is None:
                    continue
                marks = line.marks_message()
                if marks is not None:
                    leg.send(marks)
                await leg.send_and_drain(pack(MessageKind.CALLER_AUDIO, pcm))
        except StopAsyncIteration:
            return

    async def _await_end(self, line: _CallerLine) -> None:
        reason = await line.caller.wait_ended()
        await line.caller.hangup()
        await self._finish(line, reason)

    async def _finish(self, line: _CallerLine, reason: EndReason) -> None:
        """Save the recording, tell the call how it ended, keep the line a while, drop it."""
        caller = line.caller
        path = ""
        if caller.recorder is not None and self._recordings is not None:
            target = self._recordings / f"{line.order.call_id}.wav"
            path = str(await asyncio.to_thread(caller.recorder.save, target))
        line.ending = {"reason": reason.value, "unanswered": list(caller.unanswered),
                       "recording_path": path, "transfers": list(caller.transfers),
                       "dtmf": list(caller.dtmf_sent)}
        for leg in (line.leg, line.standby):
            if leg is not None:
                marks = line.marks_message(force=True)
                if marks is not None:
                    leg.send(marks)
                leg.send(pack_json(MessageKind.ENDED, line.ending))
        await asyncio.sleep(self._keep_ended_s)
        await self._drop(line)

    def _watch_orphan(self, line: _CallerLine) -> None:
        """Hang up ``orphan_timeout_s`` after the line last lost its leg (or was dialled).

        The clock restarts at each loss: a watch left from the dial would otherwise hang up a
        caller whose leg dropped just before it fired, with no time for a new call actor."""
        if line.orphaned is not None and not line.orphaned.done():
            line.orphaned.cancel()

        async def hang_up_when_orphaned() -> None:
            await asyncio.sleep(self._orphan_timeout_s)
            if line.leg is None and line.ending is None:
                log.warning("caller hung up: no call on the line",
                            extra={"call_id": line.order.call_id})
                await self._act(line, {"hangup": True})

        line.orphaned = asyncio.create_task(hang_up_when_orphaned(), name="line-orphan")

    async def _drop(self, line: _CallerLine) -> None:
        self._lines.pop(line.order.call_id, None)
        tasks = [*line.tasks, *([line.orphaned] if line.orphaned else []), line.ready]
        current = asyncio.current_task()
        for task in tasks:
            if task is not current and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)
        for leg in (line.leg, line.standby):
            if leg is not None:
                await leg.close()
