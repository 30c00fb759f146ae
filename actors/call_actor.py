"""CallActor: one live call at a time. A shell over ``voice_ai.pipeline.runtime.CallRuntime``.

Warm actors are created ahead of demand and ``prepare()``d (pools reached, VAD loaded, the
call's stages built), so a new call only hands over its spec. After a completed call the
dispatcher puts the actor back in the warm pool (up to CALL_ACTOR_MAX_CALLS calls).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import psutil
import ray

from actors.appointments_client import AppointmentsClient
from actors.breaker_registry import RayBoard
from actors.names import BREAKER_REGISTRY, TELEMETRY
from actors.pool_client import RayPoolPort
from actors.pool_layout import needs_breakers, pool_size
from actors.worker_setup import forward_logs
from voice_ai.agent.call import receptionist_factory, receptionist_settings
from voice_ai.agent.profile import load_profile
from voice_ai.config import Settings
from voice_ai.pipeline.runtime import CallRuntime
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.vad import load_vad
from voice_ai.providers.ports import PoolPort
from voice_ai.records import CallRecord, TurnTimings

logger = logging.getLogger("voice_ai.call")


@ray.remote(max_restarts=0, max_task_retries=0)
class CallActor:
    def __init__(self, settings: Settings) -> None:
        forward_logs(settings.ray_namespace)
        self._settings = settings
        self._node_id = ray.get_runtime_context().get_node_id()
        self._proc = psutil.Process(os.getpid())
        self._proc.cpu_percent()
        self._runtime: CallRuntime | None = None

    async def prepare(self) -> dict[str, Any]:
        """Warm up: reach the pools, load the VAD, build the stages. Returns where and how
        long."""
        started = time.perf_counter()
        s = self._settings
        if self._runtime is None:
            if s.call_actor_nice:
                # Linux niceness is per thread: this is the actor's event loop thread, where
                # the call runs, and the threads it starts from now on (VAD inference)
                os.nice(s.call_actor_nice)
            ns = s.ray_namespace

            async def connect(stage: str, provider: str) -> PoolPort:
                return RayPoolPort.named(stage, provider, pool_size(s, stage, provider), ns)

            board = (RayBoard(ray.get_actor(BREAKER_REGISTRY, namespace=ns))
                     if needs_breakers(s) else None)
            # the receptionist (docs/agent.md): the profile's greeting and tools, booking
            # through the store writer
            profile = load_profile(s.agent_profile_path)
            self._runtime = CallRuntime(
                receptionist_settings(s, profile), connect, board, vad_loader=load_vad,
                node_id=self._node_id, agent_factory=receptionist_factory(
                    profile, AppointmentsClient(namespace=ns)))
            self._telemetry = ray.get_actor(TELEMETRY, namespace=ns)
        info = await self._runtime.prepare()
        return {"node_id": self._node_id, "pid": os.getpid(),
                "prepare_s": time.perf_counter() - started, "placement": info.placement}

    async def run_call(self, spec: CallSpec) -> CallRecord:
        await self.prepare()
        assert self._runtime is not None
        telemetry = self._telemetry

        def on_turn(turn: TurnTimings) -> None:
            telemetry.turn.remote(spec.call_id, turn)

        return await self._runtime.run_call(spec, on_turn=on_turn)

    def stats(self) -> dict[str, Any]:
        # RSS from /proc/PID/statm: USS would walk every mapping (smaps) on each 2 s poll,
        # a measurable share of a busy call actor's CPU
        return {"node_id": self._node_id, "pid": os.getpid(),
                "rss_bytes": self._proc.memory_info().rss,
                "cpu_percent": self._proc.cpu_percent()}
