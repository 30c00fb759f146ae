"""A phone line between a simulated caller and a call: the caller lives outside the call actor.

In production the caller's leg lives in the LiveKit room, not in the agent: an agent process
can die and the caller is still on the line. The simulated caller gets the same shape here. It
runs in a caller host (``LineExchange``; in the cluster the ``CallerHost`` actor), and a call
reaches it over a loopback TCP socket, like an agent joining a room:

    exchange = LineExchange(piper_voice, recordings_dir=...)
    await exchange.start()
    address = await exchange.dial(CallerOrder(call_id, scenario))   # the phone rings
    transport = LineTransport(address)                               # a CallTransport
    ... CallSession(...).run(transport) ...

Dialling is idempotent per call id, and a new leg replaces the old one: a call actor that
dies leaves its caller on the line (hearing silence, as a phone caller would), and a new call
actor that connects to the same ``LineAddress`` carries the call on.

The wire: each message is one byte of kind, four bytes of length (big endian), the payload.
Caller audio goes one 20 ms frame per message at real-time pace (``SimulatedCaller`` paces
it); agent audio goes as the session produces it (faster than real time, the caller's playout
clock decides when it is heard); control messages are JSON. Per-frame Ray calls at 50 frames a
second per call would cost more than the call; a socket costs two small reads per frame.

Each caller is an ordinary ``SimulatedCaller``: it keeps its own timing marks (when it stopped
speaking, when it first heard the agent), its recording and its record of transfers and DTMF,
and sends its marks to the call as they change, so the call's turns carry the caller's truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import tts
from livekit.agents.voice.io import AudioInput, AudioOutput

from voice_ai.errors import VoiceAIError
from voice_ai.pipeline.recorder import ConversationRecorder
from voice_ai.pipeline.scenario import Scenario
from voice_ai.pipeline.simulated import (
    CALLER_SAMPLE_RATE,
    FRAME_S,
    CallerVoice,
    PhoneAudioOutput,
    SimulatedCaller,
)
from voice_ai.pipeline.transport import CallerSpeechMark, CallTransport
from voice_ai.records import CallDirection, EndReason

__all__ = ["CallerLineInfo", "CallerLines", "CallerOrder", "LineAddress", "LineError",
           "LineExchange", "LineStatus", "LineTransport"]

log = logging.getLogger("voice_ai.line")

_HEADER = struct.Struct(">BI")
_AUDIO_HEADER = struct.Struct(">IH")  # sample rate, channels
_MAX_MESSAGE = 1 << 20
_SAMPLES_PER_FRAME = int(CALLER_SAMPLE_RATE * FRAME_S)
_INPUT_BACKLOG = 500  # caller frames the call may fall behind by (10 s) before old ones drop
_DRAIN_ABOVE = 256 * 1024  # bytes queued on a socket before a writer waits for the peer


class LineError(VoiceAIError):
    """The line could not be set up: no caller host, a wrong token, an unknown call, or the
    caller was not ready in time. The message says which."""


class _Kind(IntEnum):
    HELLO = 1  # call -> caller: {"call_id", "token"}
    WELCOME = 2  # caller -> call: {"direction", "caller_masked"} once the caller is ready
    START = 3  # call -> caller: the agent listens; the caller's script begins (once)
    CALLER_AUDIO = 4  # caller -> call: one 20 ms frame, PCM16 mono 16 kHz
    AGENT_AUDIO = 5  # call -> caller: sample rate, channels, PCM16
    AGENT_FLUSH = 6  # call -> caller: the agent's current reply is complete
    AGENT_CLEAR = 7  # call -> caller: barge-in, the rest of the reply is never played
    MARKS = 8  # caller -> call: [[ended_speaking_at, text, agent_audio_at | null], ...]
    ACTION = 9  # call -> caller: {"transfer": e164} | {"dtmf": digits} | {"hangup": true}
    ENDED = 10  # caller -> call: {"reason", "unanswered", "recording_path", ...}


@dataclass(frozen=True, slots=True)
class LineAddress:
    """Where a caller waits: reconnect to it with a new ``LineTransport(address)``."""

    host: str
    port: int
    call_id: str
    token: str = field(repr=False)  # per line: a stray connection cannot take the call


@dataclass(frozen=True, slots=True)
class CallerOrder:
    """What a caller host needs to put one simulated caller on a line."""

    call_id: str
    scenario: Scenario
    record_audio: bool = True
    direction: CallDirection = CallDirection.SIMULATED
    caller_masked: str = ""


@dataclass(frozen=True, slots=True)
class LineStatus:
    lines: int  # callers on the exchange (live or just ended)
    live: int  # callers whose call has not ended
    legs: int  # call legs connected now
    dialled_total: int
    reconnects_total: int  # a leg that replaced an earlier one (a resumed call)


@dataclass(frozen=True, slots=True)
class CallerLineInfo:
    """One caller on the exchange (tests and operators: is the caller still there?)."""

    call_id: str
    live: bool  # the caller has not hung up
    leg_connected: bool
    legs_total: int  # legs that have connected to this line (2+: the call was taken over)
    lines_spoken: int


class CallerLines(Protocol):
    """Dials simulated callers (the ``CallerHost`` actors in the cluster, a ``LineExchange``
    in tests)."""

    async def dial(self, order: CallerOrder) -> LineAddress: ...


# --- the wire ------------------------------------------------------------------------------
def _frame(kind: _Kind, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def _json(kind: _Kind, body: Any) -> bytes:
    return _frame(kind, json.dumps(body, separators=(",", ":")).encode())


async def _read(reader: asyncio.StreamReader) -> tuple[_Kind, bytes] | None:
    """The next message, or ``None`` at the end of the stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
        kind, size = _HEADER.unpack(header)
        if size > _MAX_MESSAGE:
            raise LineError(f"line message of {size} bytes (at most {_MAX_MESSAGE})")
        return _Kind(kind), await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def _audio_payload(frame: rtc.AudioFrame) -> bytes:
    return (_AUDIO_HEADER.pack(frame.sample_rate, frame.num_channels)
            + frame.data.cast("B").tobytes())


def _audio_frame(payload: bytes) -> rtc.AudioFrame:
    rate, channels = _AUDIO_HEADER.unpack_from(payload)
    pcm = payload[_AUDIO_HEADER.size:]
    return rtc.AudioFrame(pcm, rate, channels, len(pcm) // (2 * channels))


class _Leg:
    """One connected socket: writes are queued at once, a writer waits only when the peer
    falls far behind."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def send_and_drain(self, data: bytes) -> None:
        self.send(data)
        if self.writer.transport.get_write_buffer_size() > _DRAIN_ABOVE:
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


# --- the call's side ------------------------------------------------------------------------
class _LineAudioInput(AudioInput):
    """The caller's frames as they arrive (the caller paces them)."""

    def __init__(self) -> None:
        super().__init__(label="phone-line")
        self._frames: deque[bytes | None] = deque(maxlen=_INPUT_BACKLOG)
        self._arrived = asyncio.Event()

    def put(self, pcm: bytes | None) -> None:
        self._frames.append(pcm)
        self._arrived.set()

    async def __anext__(self) -> rtc.AudioFrame:
        while not self._frames:
            self._arrived.clear()
            await self._arrived.wait()
        pcm = self._frames.popleft()
        if pcm is None:
            self._frames.append(None)  # stays ended
            raise StopAsyncIteration
        return rtc.AudioFrame(pcm, CALLER_SAMPLE_RATE, 1, _SAMPLES_PER_FRAME)


class _LineAudioOutput(PhoneAudioOutput):
    """The agent's audio down the line; the playback events come from the same playout clock
    as the caller's (``PhoneAudioOutput``)."""

    def __init__(self, send: Callable[[bytes], None], clock: Callable[[], float]) -> None:
        super().__init__(None, clock)
        self._send = send

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        self._send(_frame(_Kind.AGENT_AUDIO, _audio_payload(frame)))

    def flush(self) -> None:
        super().flush()
        self._send(_frame(_Kind.AGENT_FLUSH, b""))

    def clear_buffer(self) -> None:
        if self.speaking:
            self._send(_frame(_Kind.AGENT_CLEAR, b""))
        super().clear_buffer()


class LineTransport(CallTransport):
    """The call's end of a line to a simulated caller (see the module docstring)."""

    def __init__(self, address: LineAddress, *, ready_timeout_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.address = address
        self._ready_timeout_s = ready_timeout_s
        self._clock = clock
        self._leg: _Leg | None = None
        self._input = _LineAudioInput()
        self._output = _LineAudioOutput(self._send, clock)
        self._marks: list[CallerSpeechMark] = []
        self._ended: asyncio.Future[EndReason] | None = None
        self._reading: asyncio.Task[None] | None = None
        self.unanswered: list[int] = []
        self.recording_path = ""
        self.transfers: list[str] = []
        self.dtmf_sent: list[str] = []

    @property
    def audio_input(self) -> AudioInput:
        return self._input

    @property
    def audio_output(self) -> AudioOutput:
        return self._output

    def _send(self, data: bytes) -> None:
        if self._leg is not None:
            self._leg.send(data)

    async def prepare(self) -> None:
        """Connect and wait until the caller is ready (its lines spoken into audio): the
        caller's work, not the agent's call setup."""
        if self._leg is not None:
            return
        a = self.address
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(a.host, a.port), self._ready_timeout_s)
        except (OSError, TimeoutError) as e:
            raise LineError(f"no caller host at {a.host}:{a.port}: {type(e).__name__}") from e
        leg = _Leg(reader, writer)
        leg.send(_json(_Kind.HELLO, {"call_id": a.call_id, "token": a.token}))
        try:
            welcome = await asyncio.wait_for(_read(reader), self._ready_timeout_s)
        except TimeoutError:
            await leg.close()
            raise LineError(f"caller of call {a.call_id} not ready within "
                            f"{self._ready_timeout_s:g} s") from None
        if welcome is None:
            await leg.close()
            raise LineError(f"caller host refused call {a.call_id} (unknown call or token)")
        if welcome[0] not in (_Kind.WELCOME, _Kind.ENDED):
            await leg.close()
            raise LineError(f"caller host sent {welcome[0].name} before WELCOME on call "
                            f"{a.call_id}")
        self._leg = leg
        self._ended = asyncio.get_running_loop().create_future()
        self._handle(*welcome)
        self._reading = asyncio.create_task(self._read_loop(leg), name="line-reader")

    async def connect(self) -> None:
        await self.prepare()
        self._send(_frame(_Kind.START, b""))

    async def _read_loop(self, leg: _Leg) -> None:
        while (message := await _read(leg.reader)) is not None:
            self._handle(*message)
        self._input.put(None)
        self._end(EndReason.ERROR, "the line to the simulated caller dropped")

    def _handle(self, kind: _Kind, payload: bytes) -> None:
        if kind is _Kind.CALLER_AUDIO:
            self._input.put(payload)
        elif kind is _Kind.MARKS:
            self._set_marks(json.loads(payload))
        elif kind is _Kind.WELCOME:
            hello = json.loads(payload)
            self.direction = CallDirection(hello["direction"])
            self.caller_masked = str(hello["caller_masked"])
            self._set_marks(hello["marks"])
        elif kind is _Kind.ENDED:
            end = json.loads(payload)
            self.unanswered = [int(i) for i in end["unanswered"]]
            self.recording_path = str(end["recording_path"])
            self.transfers = [str(n) for n in end["transfers"]]
            self.dtmf_sent = [str(d) for d in end["dtmf"]]
            self._input.put(None)
            self._end(EndReason(end["reason"]))

    def _set_marks(self, marks: list[list[Any]]) -> None:
        self._marks = [CallerSpeechMark(ended_speaking_at=float(e), text=str(t),
                                        agent_audio_at=None if a is None else float(a))
                       for e, t, a in marks]

    def _end(self, reason: EndReason, detail: str = "") -> None:
        if self._ended is not None and not self._ended.done():
            if detail:
                self.end_detail = detail
            self._ended.set_result(reason)

    async def _wait_ended(self) -> EndReason:
        assert self._ended is not None, "connect() first"
        return await asyncio.shield(self._ended)

    async def hangup(self) -> None:
        """The agent's side hangs up; the caller ends its script and reports back."""
        if self._ended is not None and not self._ended.done():
            self._send(_json(_Kind.ACTION, {"hangup": True}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._ended), 2.0)

    async def aclose(self) -> None:
        if self._leg is not None:
            await self._leg.close()
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        await super().aclose()

    async def _transfer(self, to_e164: str) -> None:
        self._send(_json(_Kind.ACTION, {"transfer": to_e164}))

    async def _send_dtmf(self, digits: str) -> None:
        self._send(_json(_Kind.ACTION, {"dtmf": digits}))

    def speech_marks(self) -> list[CallerSpeechMark]:
        return list(self._marks)


# --- the caller's side ----------------------------------------------------------------------
class _CallerLine:
    """One simulated caller on the exchange, and the leg to its call (if one is connected)."""

    def __init__(self, order: CallerOrder, caller: SimulatedCaller, token: str) -> None:
        self.order = order
        self.caller = caller
        self.token = token
        self.leg: _Leg | None = None
        self.legs = 0  # legs greeted so far
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
        return _json(_Kind.MARKS, self.marks())


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
                          dialled_total=self._dialled, reconnects_total=self._reconnects)

    def line_info(self, call_id: str) -> CallerLineInfo | None:
        line = self._lines.get(call_id)
        if line is None:
            return None
        return CallerLineInfo(call_id, live=line.ending is None,
                              leg_connected=line.leg is not None, legs_total=line.legs,
                              lines_spoken=len(line.caller.speech_marks()))

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
        leg = _Leg(reader, writer)
        try:
            line = await self._greet(leg)
            if line is not None:
                await self._serve(line, leg)
        except Exception:
            log.exception("line leg failed")
        finally:
            await leg.close()

    async def _greet(self, leg: _Leg) -> _CallerLine | None:
        hello = await _read(leg.reader)
        if hello is None or hello[0] is not _Kind.HELLO:
            return None
        try:
            body = json.loads(hello[1])
            call_id, token = str(body["call_id"]), str(body["token"])
        except (ValueError, KeyError, TypeError):
            return None
        line = self._lines.get(call_id)
        if line is None or not hmac.compare_digest(line.token, token):
            log.warning("line leg refused", extra={"reason": "unknown call or token"})
            return None
        await line.ready
        if line.ending is not None:  # the caller already hung up: say so, and nothing else
            leg.send(_json(_Kind.ENDED, line.ending))
            return None
        # WELCOME goes first, then the leg is the line's: the pump (the caller's audio and
        # marks) sends on ``line.leg``, and a frame ahead of WELCOME is a refusal to the call
        # (a takeover while the old leg was still closing, under load, hit that)
        leg.send(_json(_Kind.WELCOME, {"direction": line.order.direction.value,
                                       "caller_masked": line.order.caller_masked,
                                       "marks": line.marks()}))
        old, line.leg = line.leg, leg
        line.legs += 1
        if line.legs > 1:  # a new call actor took over the call (the old one died or left)
            self._reconnects += 1
            log.info("caller line reconnected", extra={"call_id": call_id})
        if old is not None:
            await old.close()
        return line

    async def _serve(self, line: _CallerLine, leg: _Leg) -> None:
        caller = line.caller
        output = caller.audio_output
        while (message := await _read(leg.reader)) is not None:
            kind, payload = message
            if kind is _Kind.AGENT_AUDIO:
                await output.capture_frame(_audio_frame(payload))
            elif kind is _Kind.AGENT_FLUSH:
                output.flush()
            elif kind is _Kind.AGENT_CLEAR:
                output.clear_buffer()
            elif kind is _Kind.START and not line.started:
                line.started = True
                await caller.connect()
                line.spawn(self._pump(line), "line-pump")
                line.spawn(self._await_end(line), "line-end")
            elif kind is _Kind.ACTION:
                await self._act(line, json.loads(payload))
        if line.leg is leg:  # dropped, not replaced: the caller waits on the line
            line.leg = None
            self._watch_orphan(line)

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
                await leg.send_and_drain(_frame(_Kind.CALLER_AUDIO, pcm))
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
        leg = line.leg
        if leg is not None:
            marks = line.marks_message(force=True)
            if marks is not None:
                leg.send(marks)
            leg.send(_json(_Kind.ENDED, line.ending))
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
        if line.leg is not None:
            await line.leg.close()
