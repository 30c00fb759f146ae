"""CallActor: one live call per actor. A shell over ``voice_ai.pipeline.session.CallSession``.

Warm actors are created ahead of demand and ``prepare()``d (VAD loaded, pool clients
connected), so a new call only hands over its spec. After a completed call the dispatcher
puts the actor back in the warm pool (up to CALL_ACTOR_MAX_CALLS calls); otherwise it retires.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import psutil
import ray

from actors.breaker_registry import BreakerGate
from actors.fallback_client import FallbackClient
from actors.names import BREAKER_REGISTRY, TELEMETRY
from actors.pool_client import PoolClient
from actors.pool_layout import LOCAL_PROVIDER, pool_layout
from actors.worker_setup import forward_logs
from voice_ai.config import Settings
from voice_ai.pipeline.session import CallEngines, CallSession
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transports import build_transport
from voice_ai.pipeline.vad import load_vad
from voice_ai.records import CallRecord, TurnTimings

logger = logging.getLogger("voice_ai.call")


@ray.remote(max_restarts=0, max_task_retries=0)
class CallActor:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engines: CallEngines | None = None
        self._proc = psutil.Process(os.getpid())
        self._proc.cpu_percent()
        self._node_id = ray.get_runtime_context().get_node_id()
        forward_logs(settings.ray_namespace)

    async def prepare(self) -> dict[str, Any]:
        """Warm up: connect pool clients and load the VAD. Returns where and how long."""
        started = time.perf_counter()
        s = self._settings
        if s.call_actor_nice:
            # Linux niceness is per thread: this is the actor's event loop thread, where the
            # call runs, and the threads it starts from now on (VAD inference, to_thread)
            os.nice(s.call_actor_nice)
        ns = s.ray_namespace
        clients: dict[str, Any] = {}
        local: dict[str, PoolClient] = {}
        gate: BreakerGate | None = None
        for stage, pools in pool_layout(s).items():
            connected = [await PoolClient.connect(p.stage, p.provider, p.size, ns) for p in pools]
            local[stage] = connected[-1]  # the local model is always the last pool
            if len(connected) == 1:
                clients[stage] = connected[0]
            else:
                gate = gate or BreakerGate(ray.get_actor(BREAKER_REGISTRY, namespace=ns))
                clients[stage] = FallbackClient(stage, connected[0], connected[1], gate)
        assert local["tts"].name == LOCAL_PROVIDER["tts"]
        self._caller_voice = local["tts"]  # simulated callers always speak with Piper
        self._engines = CallEngines(stt=clients["stt"], llm=clients["llm"], tts=clients["tts"],
                                    vad=load_vad(s))
        self._telemetry = ray.get_actor(TELEMETRY, namespace=ns)
        return {"node_id": self._node_id, "pid": os.getpid(),
                "prepare_s": time.perf_counter() - started}

    async def run_call(self, spec: CallSpec) -> CallRecord:
        if self._engines is None:
            await self.prepare()
        assert self._engines is not None
        telemetry = self._telemetry

        def on_turn(turn: TurnTimings) -> None:
            telemetry.turn.remote(spec.call_id, turn)

        session = CallSession(self._settings, self._engines, call_id=spec.call_id,
                              node_id=self._node_id, on_turn=on_turn)
        transport = build_transport(spec, self._settings, caller_voice=self._caller_voice)
        record = await session.run(transport, admitted_at=spec.admitted_at, warm=spec.warm)
        recorder = getattr(transport, "recorder", None)
        if recorder is not None:
            path = self._settings.recordings_dir / f"{spec.call_id}.wav"
            recorder.save(path)
            record = _with_recording(record, str(path))
        return record

    def stats(self) -> dict[str, Any]:
        # RSS from /proc/PID/statm: USS would walk every mapping (smaps) on each 2 s poll,
        # a measurable share of a busy call actor's CPU
        return {"node_id": self._node_id, "pid": os.getpid(),
                "rss_bytes": self._proc.memory_info().rss,
                "cpu_percent": self._proc.cpu_percent()}


def _with_recording(record: CallRecord, path: str) -> CallRecord:
    from dataclasses import replace

    return replace(record, recording_path=path)
