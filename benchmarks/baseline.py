"""The baseline: plain livekit-agents, one process per call, no Ray (how LiveKit Agents runs jobs).

Each call process builds the cloud engines (the real Deepgram/OpenAI/Cartesia plugins, pointed
at the same simulators) and the VAD in-process, says ``ready``, waits for its call on stdin, runs
the very same ``CallSession`` the call actors run, prints the record as JSON and exits. Like
LiveKit's idle process pool (and our warm call actors), a prepared process is kept ready for
every slot, and a replacement is started each time one takes a call.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BaselineCall", "BaselinePool"]

_READY = "ready"


@dataclass
class BaselineCall:
    record: dict[str, Any]
    uss_peak: int


class BaselinePool:
    """Keeps one prepared call process per slot; ``run_call`` hands a call to one of them."""

    def __init__(self, settings_json: str, audio_path: Path, size: int) -> None:
        self._settings_json = settings_json
        self._audio_path = audio_path
        self._size = size
        self._ready: asyncio.Queue[asyncio.subprocess.Process] = asyncio.Queue()
        self._spawning: set[asyncio.Task[None]] = set()
        self._all: list[asyncio.subprocess.Process] = []

    async def fill(self) -> None:
        await asyncio.gather(*(self._spawn() for _ in range(self._size)))

    async def _spawn(self) -> None:
        env = {**os.environ, "BASELINE_SETTINGS": self._settings_json}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.baseline", str(self._audio_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env=env, limit=2**24)
        self._all.append(proc)
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if line.decode().strip() != _READY:
            raise RuntimeError("baseline call process failed to start")
        await self._ready.put(proc)

    def _replace(self) -> None:
        task = asyncio.create_task(self._spawn())
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def run_call(self, call_id: str, scenario: dict[str, Any]) -> BaselineCall:
        proc = await self._ready.get()
        self._replace()
        assert proc.stdin is not None and proc.stdout is not None
        request = {"call_id": call_id, "scenario": scenario, "admitted_at": time.time()}
        proc.stdin.write((json.dumps(request) + "\n").encode())
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        await proc.wait()
        data = json.loads(line)
        return BaselineCall(record=data["record"], uss_peak=int(data["uss_peak"]))

    async def close(self) -> None:
        for task in list(self._spawning):
            task.cancel()
        for proc in self._all:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


# --- the call process ---------------------------------------------------------------------------
async def _serve_one(audio_path: Path) -> None:
    import psutil

    from benchmarks.prerender import load_audio
    from voice_ai.config import Settings
    from voice_ai.pipeline.scenario import Scenario
    from voice_ai.pipeline.session import CallEngines, CallSession
    from voice_ai.pipeline.simulated import SimulatedCaller
    from voice_ai.pipeline.vad import load_vad
    from voice_ai.providers.cloud import CartesiaEngine, DeepgramEngine, OpenAIEngine

    settings = Settings(**json.loads(os.environ["BASELINE_SETTINGS"]))
    voice = load_audio(audio_path)
    engines = CallEngines(stt=DeepgramEngine(settings), llm=OpenAIEngine(settings),
                          tts=CartesiaEngine(settings), vad=load_vad(settings))
    print(_READY, flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if not line:
        return
    request = json.loads(line)
    me = psutil.Process()
    peak = [me.memory_full_info().uss]
    sampler = asyncio.create_task(_sample_uss(me, peak.append))
    session = CallSession(settings, engines, call_id=request["call_id"])
    caller = SimulatedCaller(Scenario.model_validate(request["scenario"]), voice)
    record = await session.run(caller, admitted_at=float(request["admitted_at"]))
    sampler.cancel()
    peak.append(me.memory_full_info().uss)
    print(json.dumps({"record": record.to_dict(), "uss_peak": max(peak)}), flush=True)


async def _sample_uss(me: Any, add: Callable[[int], None]) -> None:
    # every 3 s, as ProcessSampler reads USS on our side: reading it costs kernel time
    while True:
        await asyncio.sleep(3.0)
        add(me.memory_full_info().uss)


if __name__ == "__main__":
    import livekit.plugins.silero  # noqa: F401  # plugins register on the main thread

    asyncio.run(_serve_one(Path(sys.argv[1])))
    os._exit(0)  # do not wait for plugin threads: the record is out
