"""The stock agent: what a LiveKit Agents user deploys, the yardstick of the load benchmark.

One OS process per call (how LiveKit Agents runs jobs) running a plain ``AgentSession`` with
the stock plugins: ``deepgram.STT()``, ``openai.LLM()``, ``cartesia.TTS()`` and Silero VAD,
each with the library's own defaults except the base URLs (the same simulators as ours) and
two settings that must match ours: the VAD's silence (``min_silence_duration``) and the
endpointing delay (``min_delay``). Turn detection is livekit-agents' default, the
``TurnDetector`` (``turn-detector-v1-mini``), which runs offline: livekit-local-inference ships
its weights inside its wheel. Preemptive generation is the library's default (on).

It does not import our providers, pipeline session or actors: only the line to the simulated
caller (``voice_ai.pipeline.line.LineTransport``, our ``CallTransport``) and the scenario. The
caller itself runs where our calls' callers run (the system's caller hosts), so both sides are
measured by the same code and neither pays for its caller.

Like LiveKit's idle process pool (and our warm call actors), one prepared process waits per
slot (plugins imported, VAD loaded: LiveKit's ``prewarm``), and a replacement starts whenever
one takes a call.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["StockCall", "StockJob", "StockPool"]

_READY = "ready"
INSTRUCTIONS = ("You are Joe, the friendly phone receptionist of Bright Dental clinic. "
                "Answer in one or two short sentences.")
GREETING = "Hello, Bright Dental, this is Joe. How can I help you?"


@dataclass(frozen=True)
class StockJob:
    """What a stock call process needs (the same values ours gets from Settings)."""

    deepgram_base_url: str
    openai_base_url: str
    cartesia_base_url: str
    vad_silence_s: float
    min_delay_s: float
    turn_detection: str = "default"
    """``default``: livekit's ``TurnDetector`` (what ``AgentSession()`` gives); ``vad`` or
    ``stt``: livekit's VAD- or STT-based end of turn."""
    api_key: str = "test-key"
    nice: int = 0
    """Niceness of the call processes: the benchmark gives them our call actors' (Ray starts
    its workers at 15), so neither side's agent outranks the other or the shared harness."""
    greeting: str = GREETING
    instructions: str = INSTRUCTIONS

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


@dataclass
class StockCall:
    record: dict[str, Any]
    uss_peak: int
    voice_ai_modules: list[str]


STOCK_PRELOAD = [
    "livekit.plugins.deepgram", "livekit.plugins.openai", "livekit.plugins.cartesia",
    "livekit.plugins.silero",
    # livekit-agents' own worker preloads exactly these in its forkserver (worker.py)
    "livekit.agents.ipc._preload", "livekit.agents.ipc._preload_freeze",
]


class StockPool:
    """Keeps one prepared stock call process per slot; ``run_call`` hands a call to one.

    Processes are forked from a ``forkserver`` that imported the plugins and livekit-agents'
    warm-up (``ipc._preload``: the Silero and turn-detector weights), as LiveKit's worker does
    on Linux, so they share those pages copy-on-write."""

    def __init__(self, job: StockJob, size: int) -> None:
        import multiprocessing

        self._job = job
        self._size = size
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(STOCK_PRELOAD)
        self._ready: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        self._spawning: set[asyncio.Task[None]] = set()
        self._all: list[Any] = []

    async def fill(self) -> None:
        await asyncio.gather(*(self._spawn() for _ in range(self._size)))

    async def _spawn(self) -> None:
        ours, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(target=_call_process, args=(theirs, self._job.to_json()),
                                 name="stock-agent-call", daemon=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, proc.start)
        self._all.append(proc)
        theirs.close()
        ready = await loop.run_in_executor(None, ours.recv)
        if ready != _READY:
            raise RuntimeError("stock call process failed to start")
        await self._ready.put((proc, ours))

    def _replace(self) -> None:
        task = asyncio.create_task(self._spawn())
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def run_call(self, call_id: str, scenario: dict[str, Any], line: Any) -> StockCall:
        """One call in a prepared process; ``line``: the caller's ``LineAddress``."""
        proc, conn = await self._ready.get()
        self._replace()
        conn.send({"call_id": call_id, "scenario": scenario, "admitted_at": time.time(),
                   "line": {"host": line.host, "port": line.port, "call_id": line.call_id,
                            "token": line.token}})
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(None, conn.recv)
        except EOFError:
            raise RuntimeError(f"stock call process for {call_id} died") from None
        await loop.run_in_executor(None, proc.join, 10)
        return StockCall(record=data["record"], uss_peak=int(data["uss_peak"]),
                         voice_ai_modules=list(data["voice_ai_modules"]))

    async def close(self) -> None:
        for task in list(self._spawning):
            task.cancel()
        for proc in self._all:
            if proc.is_alive():
                proc.kill()
            proc.join(5)


# --- the call process ---------------------------------------------------------------------------
def _session(job: StockJob, vad: Any) -> Any:
    from livekit.agents import AgentSession
    from livekit.plugins import cartesia, deepgram, openai

    return AgentSession(
        stt=deepgram.STT(api_key=job.api_key, base_url=job.deepgram_base_url),
        llm=openai.LLM(api_key=job.api_key, base_url=job.openai_base_url),
        tts=cartesia.TTS(api_key=job.api_key, base_url=job.cartesia_base_url),
        vad=vad,
        turn_handling=_turn_handling(job),
    )


def _turn_handling(job: StockJob) -> dict[str, Any]:
    handling: dict[str, Any] = {"endpointing": {"min_delay": job.min_delay_s}}
    if job.turn_detection != "default":
        handling["turn_detection"] = job.turn_detection
    return handling


def _turns(messages: list[Any], marks: list[Any]) -> list[dict[str, Any]]:
    """One entry per answered caller line: e2e from the caller's own marks, stage timings
    from livekit's message metrics (as ``TurnTimings`` has them)."""
    turns: list[dict[str, Any]] = []
    user: list[Any] = []
    for msg in messages:
        if msg.role == "user":
            user.append(msg)
        elif msg.role == "assistant" and user:
            index = len(turns)
            mark = marks[index] if index < len(marks) else None
            um, rm = dict(user[0].metrics or {}), dict(msg.metrics or {})
            turns.append({
                "index": index,
                "ended_speaking_at": mark.ended_speaking_at if mark else um.get(
                    "stopped_speaking_at", 0.0),
                "e2e_s": mark.response_latency_s if mark else rm.get("e2e_latency"),
                "stt_s": um.get("transcription_delay"),
                "end_of_turn_s": um.get("end_of_turn_delay"),
                "llm_ttft_s": rm.get("llm_node_ttft"), "tts_ttfb_s": rm.get("tts_node_ttfb"),
                "interrupted": bool(msg.interrupted),
                "user_text": " ".join((m.text_content or "") for m in user).strip(),
                "agent_text": (msg.text_content or "").strip(),
            })
            user = []
    return turns


async def _run_call(job: StockJob, vad: Any, request: dict[str, Any]) -> Any:
    from livekit.agents import Agent
    from livekit.agents.llm import ChatMessage
    from livekit.agents.utils import http_context

    from voice_ai.pipeline.line import LineAddress, LineTransport
    from voice_ai.pipeline.scenario import Scenario

    admitted = float(request["admitted_at"])
    scenario = Scenario.model_validate(request["scenario"])
    caller = LineTransport(LineAddress(**request["line"]))
    messages: list[ChatMessage] = []
    error, setup_s = "", None
    async with http_context.open():
        session = _session(job, vad)
        session.on("conversation_item_added", lambda ev: messages.append(ev.item)
                   if isinstance(ev.item, ChatMessage) else None)
        prep = time.time()
        await caller.prepare()
        prep_s = time.time() - prep
        try:
            await caller.connect()
            await caller.attach(session)
            await session.start(Agent(instructions=job.instructions), record=False)
            setup_s = time.time() - admitted - prep_s
            session.say(job.greeting)
            await caller.wait_ended()
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
        finally:
            await caller.hangup()
            await session.aclose()
            await caller.aclose()
    turns = _turns(messages, caller.speech_marks())
    unanswered = list(caller.unanswered)
    if unanswered and not error:
        error = f"agent did not answer caller turn(s) {unanswered}"
    return {"call_id": request["call_id"], "started_at": admitted, "ended_at": time.time(),
            "outcome": "failed" if error else "completed", "error": error,
            "setup_s": setup_s, "warm_start": True, "turns": turns,
            "scenario_turns": len(scenario.turns), "unanswered": unanswered}


async def _serve_one(conn: Any, job: StockJob, vad: Any) -> None:
    import psutil

    conn.send(_READY)
    request = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    me = psutil.Process()
    peak = [me.memory_full_info().uss]
    sampler = asyncio.create_task(_sample_uss(me, peak.append))
    record = await _run_call(job, vad, request)
    sampler.cancel()
    peak.append(me.memory_full_info().uss)
    ours = sorted(m for m in sys.modules if m.startswith(("voice_ai", "actors")))
    conn.send({"record": record, "uss_peak": max(peak), "voice_ai_modules": ours})


async def _sample_uss(me: Any, add: Callable[[int], None]) -> None:
    # every 3 s, as the benchmark's sampler reads USS on our side: reading it costs kernel time
    while True:
        await asyncio.sleep(3.0)
        add(me.memory_full_info().uss)


def _call_process(conn: Any, job_json: str) -> None:
    """One stock call process (forked from the forkserver): prewarm, one call, exit."""
    from livekit.plugins import silero

    import voice_ai.pipeline.line  # noqa: F401  # the caller's line, ready as a room client is

    job = StockJob(**json.loads(job_json))
    if job.nice > os.nice(0):  # before any thread starts: every thread of the call inherits it
        os.nice(job.nice - os.nice(0))
    # LiveKit's prewarm: the VAD loaded before the process takes a job
    vad = silero.VAD.load(min_silence_duration=job.vad_silence_s)
    try:
        asyncio.run(_serve_one(conn, job, vad))
    finally:
        conn.close()
        os._exit(0)  # do not wait for plugin threads: the record is out
