"""Cartesia simulator: ``POST /tts/bytes`` (raw PCM, chunked) and ``/tts/websocket``, enough
for ``livekit.plugins.cartesia.TTS`` to work unchanged against it.

The audio is a deterministic tone, ``seconds_per_char`` long per character of text, at the
sample rate the client asks for: tests check its length and that it is not silence.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from array import array
from typing import Any

from aiohttp import WSMsgType, web

from voice_ai.simulators.server import SimulatorServer

__all__ = ["CartesiaSimulator", "tone_pcm16"]

CHUNK_S = 0.04  # audio per streamed chunk


def tone_pcm16(text: str, sample_rate: int, seconds_per_char: float = 0.06) -> bytes:
    """The audio the simulator speaks for ``text``: a 220 Hz tone, mono int16 little-endian."""
    n = int(len(text.strip()) * seconds_per_char * sample_rate)
    step = 2 * math.pi * 220 / sample_rate
    return array("h", (int(8000 * math.sin(i * step)) for i in range(n))).tobytes()


class CartesiaSimulator(SimulatorServer):
    name = "cartesia"

    def __init__(self, *args: Any, seconds_per_char: float = 0.06, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seconds_per_char = seconds_per_char
        self.last_transcript = ""

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/tts/bytes", self._bytes)
        app.router.add_get("/tts/websocket", self._websocket)

    def _chunks(self, text: str, sample_rate: int) -> list[bytes]:
        self.last_transcript = text
        pcm = tone_pcm16(text, sample_rate, self.seconds_per_char)
        size = int(CHUNK_S * sample_rate) * 2
        return [pcm[i : i + size] for i in range(0, len(pcm), size)]

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        refusal = await self.admit(request)
        if refusal is not None:
            return refusal
        if not request.headers.get("X-API-Key"):
            return web.json_response({"error": "missing api key"}, status=401)
        body = await request.json()
        sample_rate = int(body.get("output_format", {}).get("sample_rate", 24_000))
        chunks = self._chunks(str(body.get("transcript", "")), sample_rate)
        await asyncio.sleep(self.first_delay_s())
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
        started: set[str] = set()  # contexts that already had their first audio
        async for msg in ws:
            if msg.type != WSMsgType.TEXT or self.hangs():
                continue
            packet = json.loads(msg.data)
            context_id = str(packet.get("context_id", ""))
            sample_rate = int(packet.get("output_format", {}).get("sample_rate", 24_000))
            text = str(packet.get("transcript", ""))
            for i, chunk in enumerate(self._chunks(text, sample_rate) if text.strip() else []):
                first = context_id not in started
                started.add(context_id)
                await asyncio.sleep(self.first_delay_s() if first else self.latency.chunk_delay_s())
                if self.drops_mid_stream() and i > 0:
                    self.drop(request)
                    return ws
                data = base64.b64encode(chunk).decode()
                await ws.send_str(json.dumps(
                    {"type": "chunk", "data": data, "done": False, "status_code": 206,
                     "context_id": context_id}
                ))
            if not packet.get("continue", False):
                await ws.send_str(json.dumps(
                    {"type": "done", "done": True, "status_code": 206, "context_id": context_id}
                ))
        return ws
