"""Cartesia simulator: ``POST /tts/bytes`` (raw PCM, chunked) and ``/tts/websocket``, enough
for ``livekit.plugins.cartesia.TTS`` to work unchanged against it.

The audio is a deterministic tone, ``seconds_per_char`` long per character of text, at the
sample rate the client asks for: tests check its length and that it is not silence.

Time (docs/performance.md): on ``/tts/bytes`` the first chunk leaves ``ttfb_s`` after the
request. On the WebSocket each ``context_id`` is a generation of its own, and one socket may
carry several at once. Every text packet of a context is synthesized ``ttfb_s`` after it
arrives; its audio follows the audio of the context's earlier packets, in 40 ms chunks every
``chunk_interval_s``. So the first audio of a context leaves ``ttfb_s`` after its first text,
and text streamed in with ``continue: true`` keeps the audio going as Cartesia's continuations
do. A packet with ``continue: false`` ends the context: ``done`` follows its last audio. With
``add_timestamps`` each packet's audio is followed by its word timestamps; ``cancel: true``
stops a context without ``done``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from voice_ai.simulators.server import SimulatorServer

__all__ = ["CartesiaSimulator", "TextPacket", "tone_pcm16"]

CHUNK_S = 0.04  # audio per streamed chunk


def tone_pcm16(text: str, sample_rate: int, seconds_per_char: float = 0.06) -> bytes:
    """The audio the simulator speaks for ``text``: a 220 Hz tone, mono int16 little-endian."""
    n = int(len(text.strip()) * seconds_per_char * sample_rate)
    step = 2 * math.pi * 220 / sample_rate
    return array("h", (int(8000 * math.sin(i * step)) for i in range(n))).tobytes()


@dataclass(frozen=True)
class TextPacket:
    """Text the simulator received: ``at`` is ``time.monotonic()``; ``context_id`` is empty
    for ``/tts/bytes``; ``more`` is the WebSocket's ``continue``."""

    at: float
    context_id: str
    text: str
    more: bool = False


@dataclass
class _Packet:
    text: str
    sample_rate: int
    ready_at: float  # monotonic time its synthesis is done (arrival + ttfb)
    last: bool
    timestamps: bool


@dataclass
class _Context:
    packets: asyncio.Queue[_Packet] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    audio_s: float = 0.0  # audio sent so far: where the next word timestamps start


class CartesiaSimulator(SimulatorServer):
    name = "cartesia"

    def __init__(self, *args: Any, seconds_per_char: float = 0.06, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seconds_per_char = seconds_per_char
        self.packets: list[TextPacket] = []
        """Every text received (bytes requests and WebSocket packets), in order."""

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/tts/bytes", self._bytes)
        app.router.add_get("/tts/websocket", self._websocket)

    def _chunks(self, text: str, sample_rate: int) -> list[bytes]:
        pcm = tone_pcm16(text, sample_rate, self.seconds_per_char)
        size = int(CHUNK_S * sample_rate) * 2
        return [pcm[i : i + size] for i in range(0, len(pcm), size)]

    @property
    def transcripts(self) -> list[str]:
        return [p.text for p in self.packets if p.text.strip()]

    @property
    def last_transcript(self) -> str:
        texts = self.transcripts
        return texts[-1] if texts else ""

    def _heard(self, text: str, context_id: str = "", more: bool = False) -> None:
        self.packets.append(TextPacket(time.monotonic(), context_id, text, more))

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        refusal = await self.admit(request)
        if refusal is not None:
            return refusal
        if not request.headers.get("X-API-Key"):
            return web.json_response({"error": "missing api key"}, status=401)
        body = await request.json()
        sample_rate = int(body.get("output_format", {}).get("sample_rate", 24_000))
        text = str(body.get("transcript", ""))
        self._heard(text)
        chunks = self._chunks(text, sample_rate)
        await self.pace(self.first_delay_s())
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        for i, chunk in enumerate(chunks):
            if i > 0:
                await asyncio.sleep(self.latency.chunk_delay_s())
            if self.drops_mid_stream() and i == len(chunks) // 2:
                self.drop(request)
                return response
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        refusal = await self.admit(request, hang_here=False)
        if refusal is not None:
            return refusal
        if not request.headers.get("X-API-Key"):
            return web.json_response({"error": "missing api key"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        socket = _Socket(self, ws, request)
        try:
            await socket.run()
        finally:
            socket.stop()
        return ws


class _Socket:
    """One WebSocket: reads packets, runs one speaking task per context."""

    def __init__(self, sim: CartesiaSimulator, ws: web.WebSocketResponse, req: web.Request):
        self.sim, self.ws, self.request = sim, ws, req
        self.contexts: dict[str, _Context] = {}
        self.dropped = False

    async def run(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT or self.sim.hangs():
                continue
            packet = json.loads(msg.data)
            context_id = str(packet.get("context_id", ""))
            if packet.get("cancel"):
                self._cancel(context_id)
                continue
            text = str(packet.get("transcript", ""))
            self.sim._heard(text, context_id, bool(packet.get("continue", False)))
            context = self.contexts.get(context_id)
            if context is None:
                context = self.contexts[context_id] = _Context()
                context.task = asyncio.create_task(self._speak(context_id, context))
            context.packets.put_nowait(_Packet(
                text=text,
                sample_rate=int(packet.get("output_format", {}).get("sample_rate", 24_000)),
                ready_at=time.monotonic() + self.sim.first_delay_s(),
                last=not packet.get("continue", False),
                timestamps=bool(packet.get("add_timestamps", False)),
            ))
            if self.dropped:
                return
        tasks = [c.task for c in self.contexts.values() if c.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)  # finish what was asked

    def stop(self) -> None:
        for context in self.contexts.values():
            if context.task is not None:
                context.task.cancel()

    def _cancel(self, context_id: str) -> None:
        context = self.contexts.pop(context_id, None)
        if context is not None and context.task is not None:
            context.task.cancel()

    async def _speak(self, context_id: str, context: _Context) -> None:
        sim = self.sim
        sent = 0
        while True:
            packet = await context.packets.get()
            chunks = sim._chunks(packet.text, packet.sample_rate) if packet.text.strip() else []
            for i, chunk in enumerate(chunks):
                if i == 0 and sent == 0:  # the context's first audio: the modelled delay
                    await sim.pace_until(packet.ready_at)
                else:
                    wait = (packet.ready_at - time.monotonic() if i == 0
                            else sim.latency.chunk_delay_s())
                    if wait > 0:
                        await asyncio.sleep(wait)
                if sim.drops_mid_stream() and sent > 0:
                    self.dropped = True
                    sim.drop(self.request)
                    return
                await self._send({"type": "chunk", "data": base64.b64encode(chunk).decode(),
                                  "done": False, "status_code": 206, "context_id": context_id,
                                  "step_time": sim.latency.chunk_interval_s * 1000})
                sent += 1
            if chunks and packet.timestamps:
                await self._send({"type": "timestamps", "done": False, "status_code": 206,
                                  "context_id": context_id,
                                  "word_timestamps": self._words(packet.text, context)})
            context.audio_s += sum(len(c) for c in chunks) / 2 / packet.sample_rate
            if packet.last:
                await self._send({"type": "done", "done": True, "status_code": 206,
                                  "context_id": context_id})
                self.contexts.pop(context_id, None)
                return

    def _words(self, text: str, context: _Context) -> dict[str, list[Any]]:
        """Word timestamps (seconds from the context's first audio), by character count."""
        words, starts, ends = [], [], []
        at = context.audio_s
        for word in text.split():
            length = len(word) * self.sim.seconds_per_char
            words.append(word)
            starts.append(round(at, 3))
            ends.append(round(at + length, 3))
            at += length + self.sim.seconds_per_char  # the space after it
        return {"words": words, "start": starts, "end": ends}

    async def _send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await self.ws.send_str(json.dumps(message))
