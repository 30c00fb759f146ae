"""Deepgram simulator: enough of ``/v1/listen`` (live WebSocket and pre-recorded POST) for
``livekit.plugins.deepgram.STT`` to work unchanged against it.

It does not recognise speech: each utterance it hears is answered with the next text of a
scripted queue (``transcripts``), or ``default_transcript`` when the queue is empty. An
utterance ends when the audio goes quiet for ``max(endpointing, 300 ms)`` of audio time, or when
the client sends ``Finalize`` / ``CloseStream``; the final result follows ``ttfb_s`` later.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from array import array
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

from voice_ai.simulators.server import SimulatorServer

__all__ = ["DeepgramSimulator"]

SPEECH_RMS = 300.0  # int16 RMS above which a chunk counts as speech
MIN_ENDPOINT_S = 0.3


class DeepgramSimulator(SimulatorServer):
    name = "deepgram"

    def __init__(self, *args: Any, default_transcript: str = "hello world", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default_transcript = default_transcript
        self.transcripts: deque[str] = deque()

    @property
    def listen_url(self) -> str:
        """What to pass as the plugin's ``base_url`` (``DEEPGRAM_BASE_URL``)."""
        return f"{self.base_url}/v1/listen"

    def script(self, *texts: str) -> None:
        self.transcripts.extend(texts)

    def next_transcript(self) -> str:
        return self.transcripts.popleft() if self.transcripts else self.default_transcript

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/listen", self._live)
        app.router.add_post("/v1/listen", self._prerecorded)

    async def _prerecorded(self, request: web.Request) -> web.StreamResponse:
        refusal = await self.admit(request)
        if refusal is not None:
            return refusal
        if not request.headers.get("Authorization", "").startswith("Token "):
            return web.json_response({"err_msg": "missing credentials"}, status=401)
        audio = await request.read()
        await asyncio.sleep(self.first_delay_s())
        duration = max(0.0, (len(audio) - 44) / 2 / 16_000)
        alt = _alternative(self.next_transcript(), 0.0, duration)
        body = {
            "metadata": {"request_id": str(uuid.uuid4()), "duration": duration, "channels": 1},
            "results": {"channels": [{"alternatives": [alt]}]},
        }
        return web.json_response(body)

    async def _live(self, request: web.Request) -> web.StreamResponse:
        refusal = await self.admit(request, hang_here=False)
        if refusal is not None:
            return refusal
        if not request.headers.get("Authorization", "").startswith("Token "):
            return web.json_response({"err_msg": "missing credentials"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = _LiveSession(self, ws, request)
        await session.run()
        return ws


class _LiveSession:
    """One live transcription connection."""

    def __init__(self, sim: DeepgramSimulator, ws: web.WebSocketResponse, req: web.Request):
        self.sim, self.ws, self.request = sim, ws, req
        query = req.query
        self.sample_rate = int(query.get("sample_rate", "16000"))
        self.vad_events = query.get("vad_events", "false") == "true"
        endpointing = query.get("endpointing", "10")
        endpoint_ms = 10.0 if endpointing == "false" else float(endpointing)
        self.endpoint_s = max(endpoint_ms / 1000, MIN_ENDPOINT_S)
        self.request_id = str(uuid.uuid4())
        self.audio_s = 0.0  # audio time received so far
        self.speech_start_s: float | None = None  # set while an utterance is open
        self.silence_s = 0.0
        self.pending: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        if self.sim.hangs():  # accepted, then silent until the client gives up
            async for _ in self.ws:
                pass
            return
        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY:
                if self.sim.drops_mid_stream():
                    self.sim.drop(self.request)
                    return
                await self._audio(msg.data)
            elif msg.type == WSMsgType.TEXT:
                kind = json.loads(msg.data).get("type")
                if kind == "Finalize":
                    self._end_utterance(speech_final=False, from_finalize=True)
                elif kind == "CloseStream":
                    self._end_utterance(speech_final=True, from_finalize=False)
                    break
        if self.pending:
            await asyncio.gather(*self.pending)
        if not self.ws.closed:
            await self._send({"type": "Metadata", "request_id": self.request_id,
                              "duration": self.audio_s, "channels": 1})
            await self.ws.close()

    async def _audio(self, data: bytes) -> None:
        samples = array("h", data[: len(data) - len(data) % 2])
        chunk_s = len(samples) / self.sample_rate
        rms = math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
        if rms >= SPEECH_RMS:
            if self.speech_start_s is None:
                self.speech_start_s = self.audio_s
                if self.vad_events:
                    await self._send({"type": "SpeechStarted", "channel": [0],
                                      "timestamp": self.audio_s})
            self.silence_s = 0.0
        elif self.speech_start_s is not None:
            self.silence_s += chunk_s
        self.audio_s += chunk_s
        if self.speech_start_s is not None and self.silence_s >= self.endpoint_s:
            self._end_utterance(speech_final=True, from_finalize=False)

    def _end_utterance(self, *, speech_final: bool, from_finalize: bool) -> None:
        start = self.speech_start_s
        text = self.sim.next_transcript() if start is not None else ""
        end = self.audio_s - self.silence_s
        self.speech_start_s, self.silence_s = None, 0.0
        if start is None and not from_finalize:
            return
        result = {
            "type": "Results", "channel_index": [0, 1], "start": start or 0.0,
            "duration": end - (start or 0.0), "is_final": True,
            "speech_final": speech_final or start is not None, "from_finalize": from_finalize,
            "channel": {"alternatives": [_alternative(text, start or 0.0, end)]},
            "metadata": {"request_id": self.request_id, "model_uuid": "simulated"},
        }
        task = asyncio.create_task(self._send_later(result))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _send_later(self, message: dict[str, Any]) -> None:
        await asyncio.sleep(self.sim.first_delay_s())
        await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(message))


def _alternative(text: str, start_s: float, end_s: float) -> dict[str, Any]:
    words = text.split()
    step = (end_s - start_s) / len(words) if words else 0.0
    return {
        "transcript": text,
        "confidence": 0.99 if text else 0.0,
        "words": [
            {
                "word": w.strip(".,!?").lower(), "punctuated_word": w, "confidence": 0.99,
                "start": start_s + i * step, "end": start_s + (i + 1) * step,
            }
            for i, w in enumerate(words)
        ],
    }
