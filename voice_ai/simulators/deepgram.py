"""Deepgram simulator: enough of ``/v1/listen`` (live WebSocket and pre-recorded POST) for
``livekit.plugins.deepgram.STT`` to work unchanged against it.

Time, on the live WebSocket (docs/performance.md, "The simulators' model of time"): audio
arrives at real-time pace, so the simulator knows when, on the wall clock, the speech in it
ended. The final result (``is_final``) of a stretch of speech leaves ``ttfb_s ± jitter_s``
(300 ± 30 ms at ``realistic``) after the END of that speech, or ``endpointing`` ms after it
when that is longer, unless speech resumes first. ``speech_final`` is true on those finals
unless the client sent ``endpointing=false``. The query parameters are honoured as the plugin
sends them: ``interim_results`` (interims while speech arrives, one per second of audio),
``vad_events`` (``SpeechStarted`` at the first speech), ``endpointing``, ``utterance_end_ms``
(``UtteranceEnd`` once the speech has been quiet that long), ``sample_rate``.
``Finalize`` finalises the open speech (``from_finalize: true``), no sooner than the final
would have come; ``CloseStream`` sends what is pending, then ``Metadata``, and closes. What the
results say is ``voice_ai.simulators.transcript``'s business. A connection that ends in the
middle of a line gives the rest of the line back to the script, so a client that reconnects
goes on with the same line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from voice_ai.simulators.server import SimulatorServer
from voice_ai.simulators.transcript import (
    MIN_PAUSE_S,
    SPEECH_RMS,
    WINDOW_S,
    KnownLines,
    OnsetCapture,
    ScriptedLine,
)

__all__ = ["INTERIM_EVERY_S", "SPEECH_RMS", "DeepgramSimulator"]

INTERIM_EVERY_S = 1.0  # Deepgram's interim cadence in its docs: about one per second of audio


class DeepgramSimulator(SimulatorServer):
    name = "deepgram"

    def __init__(self, *args: Any, default_transcript: str = "hello world", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default_transcript = default_transcript
        self.transcripts: deque[str] = deque()
        self.known_lines = KnownLines()
        self.lines_recognised = 0
        """Lines whose text came from their audio (``learn``), not from the script."""
        self._live_sessions: set[_LiveSession] = set()

    @property
    def listen_url(self) -> str:
        """What to pass as the plugin's ``base_url`` (``DEEPGRAM_BASE_URL``)."""
        return f"{self.base_url}/v1/listen"

    def script(self, *texts: str) -> None:
        """Queue the texts of the next caller lines (one per line, in order)."""
        self.transcripts.extend(texts)

    def learn(self, text: str, pcm16: bytes, sample_rate: int) -> None:
        """Recognise this exact audio (a caller line as the client will send it) as ``text``."""
        self.known_lines.learn(text, pcm16, sample_rate)

    def drop_live_connections(self) -> int:
        """Cut every open live connection now (a network blip); returns how many."""
        sessions = list(self._live_sessions)
        for session in sessions:
            self.drop(session.request)
        return len(sessions)

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
        self._live_sessions.add(session)
        try:
            await session.run()
        finally:
            self._live_sessions.discard(session)
            session.give_back_line()
        return ws


def _flag(query: Any, name: str, default: bool) -> bool:
    value = query.get(name)
    return default if value is None else value.lower() == "true"


class _LiveSession:
    """One live transcription connection. Times ``*_audio`` are seconds of audio received,
    ``*_wall`` are ``time.monotonic()``."""

    def __init__(self, sim: DeepgramSimulator, ws: web.WebSocketResponse, req: web.Request):
        self.sim, self.ws, self.request = sim, ws, req
        query = req.query
        self.sample_rate = int(query.get("sample_rate", "16000"))
        self.interim_results = _flag(query, "interim_results", False)
        self.vad_events = _flag(query, "vad_events", False)
        endpointing = query.get("endpointing", "10")
        self.endpointing_s: float | None = (None if endpointing.lower() == "false"
                                            else float(endpointing) / 1000)
        ue_ms = query.get("utterance_end_ms")
        self.utterance_end_s = float(ue_ms) / 1000 if ue_ms else None
        self.request_id = str(uuid.uuid4())
        self.window = max(1, int(self.sample_rate * WINDOW_S))
        lowest = sim.latency.ttfb_s - sim.latency.jitter_s
        self.shortest_pause_s = max(lowest, self.endpointing_s or 0.0, MIN_PAUSE_S)
        self.audio_s = 0.0
        self.onsets = OnsetCapture(self.sample_rate)
        self.line: ScriptedLine | None = None
        self.line_onset_audio = 0.0
        self.recognising = False  # the current line's text is still to be decided
        self.segment_onset_audio: float | None = None  # open speech, not finalised yet
        self.speech_end_audio = 0.0  # end of the last speech window
        self.speech_end_wall = 0.0  # when that was spoken (audio arrives in real time)
        self.last_arrival: float | None = None
        self.pause_delay_s: float | None = None  # drawn once per pause
        self.next_interim_audio = 0.0
        self.final_timer: asyncio.TimerHandle | None = None
        self.ue_timer: asyncio.TimerHandle | None = None
        self.closed_cleanly = False
        self.pending: set[asyncio.Task[None]] = set()

    # --- the connection -----------------------------------------------------------------
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
                self._audio(msg.data)
            elif msg.type == WSMsgType.TEXT:
                kind = json.loads(msg.data).get("type")
                if kind == "Finalize":
                    self._finalize(from_finalize=True)
                elif kind == "CloseStream":
                    self.closed_cleanly = True
                    self._finalize(from_finalize=False)
                    self._fire_due_utterance_end()
                    break
        self._cancel_timers()
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
        if not self.ws.closed:
            await self._send({"type": "Metadata", "request_id": self.request_id,
                              "duration": self.audio_s, "channels": 1})
            await self.ws.close()

    def give_back_line(self) -> None:
        """A connection that ended without ``CloseStream`` in the middle of a line gives the
        rest of the line back to the script: a client that reconnects goes on with it."""
        self._cancel_timers()
        line = self.line
        if not self.closed_cleanly and line is not None and not line.complete:
            self.sim.transcripts.appendleft(line.remaining_text)
        self.line = None

    # --- audio --------------------------------------------------------------------------
    def _audio(self, data: bytes) -> None:
        now = time.monotonic()
        # audio sent in real time was spoken just before it arrived; audio sent faster (a
        # whole utterance at once) counts as spoken no earlier than the previous chunk came
        floor = now if self.last_arrival is None else self.last_arrival
        self.last_arrival = now
        samples = np.frombuffer(data[: len(data) - len(data) % 2], dtype=np.int16)
        chunk_start = self.audio_s
        self.audio_s += samples.size / self.sample_rate
        self.onsets.push(samples)
        for start in range(0, samples.size, self.window):
            window = samples[start : start + self.window].astype(np.float64)
            if np.sqrt(np.mean(window * window)) < SPEECH_RMS:
                continue
            at = chunk_start + start / self.sample_rate
            self._speech(at, samples.size - start)
            self.speech_end_audio = at + window.size / self.sample_rate
            self.speech_end_wall = max(floor, now - (self.audio_s - self.speech_end_audio))
        if self.segment_onset_audio is None:
            return
        if self.speech_end_audio < self.audio_s and self.final_timer is None:
            due = self.speech_end_wall + self._pause_delay()
            self.final_timer = asyncio.get_running_loop().call_at(
                _loop_time(due), self._finalize, False)
        if self.interim_results and self.audio_s >= self.next_interim_audio:
            self.next_interim_audio += INTERIM_EVERY_S
            self._interim()

    def _speech(self, at: float, samples_left: int) -> None:
        """A speech window starting at ``at`` (audio s), ``samples_left`` before the chunk's
        end."""
        if self.segment_onset_audio is not None:
            gap = at - self.speech_end_audio
            # audio sent faster than real time can hold a whole pause in one chunk
            if gap >= self.shortest_pause_s and gap >= self._pause_delay():
                self._finalize(from_finalize=False)
            else:
                self._resume()
                return
        self.segment_onset_audio = at
        self.next_interim_audio = at + INTERIM_EVERY_S
        if self.line is None or self.line.complete:
            self.line, self.line_onset_audio, self.recognising = None, at, True
            self.onsets.start(samples_left)
        if self.vad_events:
            self._later({"type": "SpeechStarted", "channel": [0], "timestamp": at}, 0.0)

    def _resume(self) -> None:
        """Speech again before the pause became an end: no final for it."""
        if self.final_timer is not None:
            self.final_timer.cancel()
            self.final_timer = None
        if self.ue_timer is not None:
            self.ue_timer.cancel()
            self.ue_timer = None
        self.pause_delay_s = None

    def _pause_delay(self) -> float:
        if self.pause_delay_s is None:
            self.pause_delay_s = max(self.sim.first_delay_s(), self.endpointing_s or 0.0,
                                     MIN_PAUSE_S)
        return self.pause_delay_s

    # --- what it says -------------------------------------------------------------------
    def _current_line(self) -> ScriptedLine:
        if self.line is None:
            signature = self.onsets.signature() if self.recognising else None
            known = (self.sim.known_lines.identify(signature) if signature is not None
                     else None)
            if known is not None:
                self.sim.lines_recognised += 1
                self.line = ScriptedLine(known[0], speech_s=known[1])
            else:
                self.line = ScriptedLine(self.sim.next_transcript())
            self.recognising = False
        return self.line

    def _interim(self) -> None:
        assert self.segment_onset_audio is not None
        text = self._current_line().interim_text(self.audio_s - self.line_onset_audio)
        if text:
            self._later(self._result(text, self.segment_onset_audio, self.audio_s,
                                     is_final=False, speech_final=False, from_finalize=False),
                        0.0)

    def _finalize(self, from_finalize: bool) -> None:
        """Finalise the open speech (its pause lasted, ``Finalize``, or ``CloseStream``): the
        result leaves the model's delay after the end of that speech, never sooner."""
        if self.final_timer is not None:
            self.final_timer.cancel()
            self.final_timer = None
        onset = self.segment_onset_audio
        if onset is None:
            if from_finalize:
                self._later(self._result("", self.audio_s, self.audio_s, is_final=True,
                                         speech_final=False, from_finalize=True), 0.0)
            return
        end = self.speech_end_audio
        text = self._current_line().take_final(end - self.line_onset_audio)
        speech_final = self.endpointing_s is not None and not from_finalize
        due = self.speech_end_wall + self._pause_delay()
        self._later(self._result(text, onset, end, is_final=True, speech_final=speech_final,
                                 from_finalize=from_finalize), 0.0, at=due)
        self.segment_onset_audio, self.pause_delay_s = None, None
        if self.utterance_end_s is not None and self.interim_results:
            self.ue_timer = asyncio.get_running_loop().call_at(
                _loop_time(self.speech_end_wall + self.utterance_end_s), self._utterance_end, end)

    def _fire_due_utterance_end(self) -> None:
        """On close, an ``UtteranceEnd`` already due (audio sent faster than real time)."""
        timer = self.ue_timer
        if timer is not None and timer.when() <= asyncio.get_running_loop().time():
            timer.cancel()
            self._utterance_end(self.speech_end_audio)

    def _utterance_end(self, last_word_end: float) -> None:
        self.ue_timer = None
        self._later({"type": "UtteranceEnd", "channel": [0, 1],
                     "last_word_end": last_word_end}, 0.0)

    def _result(self, text: str, start: float, end: float, *, is_final: bool,
                speech_final: bool, from_finalize: bool) -> dict[str, Any]:
        return {
            "type": "Results", "channel_index": [0, 1], "start": start,
            "duration": end - start, "is_final": is_final, "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [_alternative(text, start, end)]},
            "metadata": {"request_id": self.request_id, "model_uuid": "simulated"},
        }

    # --- sending ------------------------------------------------------------------------
    def _later(self, message: dict[str, Any], delay_s: float, *,
               at: float | None = None) -> None:
        """Send ``message`` after ``delay_s``, or at ``time.monotonic()`` ``at`` (a final:
        its lateness against the model is recorded, ``SimulatorServer.pace_until``)."""
        task = asyncio.create_task(self._send_after(message, delay_s, at))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _send_after(self, message: dict[str, Any], delay_s: float,
                          at: float | None) -> None:
        if at is not None:
            await self.sim.pace_until(at)
        elif delay_s > 0:
            await asyncio.sleep(delay_s)
        await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await self.ws.send_str(json.dumps(message))

    def _cancel_timers(self) -> None:
        for timer in (self.final_timer, self.ue_timer):
            if timer is not None:
                timer.cancel()
        self.final_timer = self.ue_timer = None


def _loop_time(monotonic_s: float) -> float:
    """``loop.call_at`` time for a ``time.monotonic()`` instant (asyncio's clock is it)."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_s - time.monotonic())


def _alternative(text: str, start_s: float, end_s: float) -> dict[str, Any]:
    words = text.split()
    step = (end_s - start_s) / len(words) if words else 0.0
    return {
        "transcript": text,
        "confidence": 0.99 if text else 0.0,
        "words": [
            {
                "word": w.strip(".,!?;:").lower(), "punctuated_word": w, "confidence": 0.99,
                "start": start_s + i * step, "end": start_s + (i + 1) * step,
            }
            for i, w in enumerate(words)
        ],
    }
