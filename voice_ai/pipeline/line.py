"""A phone line between a simulated caller and a call: the call's side.

In production the caller's leg lives in the LiveKit room, not in the agent: an agent process
can die and the caller is still on the line. The simulated caller gets the same shape here. It
runs in a caller host (``LineExchange`` in ``voice_ai.pipeline.line_exchange``; in the cluster
the ``CallerHost`` actor), and a call reaches it over a loopback TCP socket, like an agent
joining a room:

    exchange = LineExchange(piper_voice, recordings_dir=...)
    await exchange.start()
    address = await exchange.dial(CallerOrder(call_id, scenario))   # the phone rings
    transport = LineTransport(address)                               # a CallTransport
    ... CallSession(...).run(transport) ...

This module is what a call needs: how to ask for a caller (``CallerLines``, ``CallerOrder``),
where it waits (``LineAddress``) and the call's end of the line (``LineTransport``). What
crosses the socket is in ``voice_ai.pipeline.line_wire``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from livekit import rtc
from livekit.agents.voice.io import AudioInput, AudioOutput

from voice_ai.pipeline.line_wire import (
    Leg,
    LineError,
    MessageKind,
    pack,
    pack_audio,
    pack_json,
    read_message,
)
from voice_ai.pipeline.scenario import Scenario
from voice_ai.pipeline.simulated import CALLER_SAMPLE_RATE, FRAME_S, PhoneAudioOutput
from voice_ai.pipeline.transport import CallerSpeechMark, CallTransport
from voice_ai.records import CallDirection, EndReason

__all__ = ["CallerLines", "CallerOrder", "LineAddress", "LineTransport"]

_SAMPLES_PER_FRAME = int(CALLER_SAMPLE_RATE * FRAME_S)
_INPUT_BACKLOG = 500  # caller frames the call may fall behind by (10 s) before old ones drop


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


class CallerLines(Protocol):
    """Dials simulated callers (the ``CallerHost`` actors in the cluster, a ``LineExchange``
    in tests)."""

    async def dial(self, order: CallerOrder) -> LineAddress: ...


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
        self._send(pack(MessageKind.AGENT_AUDIO, pack_audio(frame)))

    def flush(self) -> None:
        super().flush()
        self._send(pack(MessageKind.AGENT_FLUSH, b""))

    def clear_buffer(self) -> None:
        if self.speaking:
            self._send(pack(MessageKind.AGENT_CLEAR, b""))
        super().clear_buffer()


class LineTransport(CallTransport):
    """The call's end of a line to a simulated caller (see the module docstring).

    ``standby``: the leg connects (``prepare``) while another call actor's leg still carries
    the call, and carries it from the moment that leg leaves (a drain's make-before-break,
    ``voice_ai.pipeline.line_exchange``); until this call listens, what the caller says waits
    in its input (up to 10 s)."""

    def __init__(self, address: LineAddress, *, standby: bool = False,
                 ready_timeout_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.address = address
        self.standby = standby
        self.dropped = False  # the caller host closed this leg before the call ended (a leg
        # that stood by and was replaced by a later one, or the host went away)
        self._ready_timeout_s = ready_timeout_s
        self._clock = clock
        self._leg: Leg | None = None
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
        leg = Leg(reader, writer)
        hello: dict[str, Any] = {"call_id": a.call_id, "token": a.token}
        if self.standby:
            hello["standby"] = True
        leg.send(pack_json(MessageKind.HELLO, hello))
        try:
            welcome = await asyncio.wait_for(read_message(reader), self._ready_timeout_s)
        except TimeoutError:
            await leg.close()
            raise LineError(f"caller of call {a.call_id} not ready within "
                            f"{self._ready_timeout_s:g} s") from None
        if welcome is None:
            await leg.close()
            raise LineError(f"caller host refused call {a.call_id} (unknown call or token)")
        if welcome[0] not in (MessageKind.WELCOME, MessageKind.ENDED):
            await leg.close()
            raise LineError(f"caller host sent {welcome[0].name} before WELCOME on call "
                            f"{a.call_id}")
        self._leg = leg
        self._ended = asyncio.get_running_loop().create_future()
        self._handle(*welcome)
        self._reading = asyncio.create_task(self._read_loop(leg), name="line-reader")

    async def connect(self) -> None:
        await self.prepare()
        self._send(pack(MessageKind.START, b""))

    async def _read_loop(self, leg: Leg) -> None:
        while (message := await read_message(leg.reader)) is not None:
            self._handle(*message)
        self._input.put(None)
        self.dropped = self._ended is not None and not self._ended.done()
        self._end(EndReason.ERROR, "the line to the simulated caller dropped")

    def _handle(self, kind: MessageKind, payload: bytes) -> None:
        if kind is MessageKind.CALLER_AUDIO:
            self._input.put(payload)
        elif kind is MessageKind.MARKS:
            self._set_marks(json.loads(payload))
        elif kind is MessageKind.WELCOME:
            hello = json.loads(payload)
            self.direction = CallDirection(hello["direction"])
            self.caller_masked = str(hello["caller_masked"])
            self._set_marks(hello["marks"])
        elif kind is MessageKind.ENDED:
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
            self._send(pack_json(MessageKind.ACTION, {"hangup": True}))
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
        self._send(pack_json(MessageKind.ACTION, {"transfer": to_e164}))

    async def _send_dtmf(self, digits: str) -> None:
        self._send(pack_json(MessageKind.ACTION, {"dtmf": digits}))

    def speech_marks(self) -> list[CallerSpeechMark]:
        return list(self._marks)

