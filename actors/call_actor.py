"""CallActor: one live call at a time. A shell over ``voice_ai.pipeline.runtime.CallRuntime``
(the call) and ``voice_ai.calls.host.CallHost`` (its life in this process).

Warm actors are created ahead of demand and ``prepare()``d (pools reached, VAD loaded, the
call's stages built), so a new call only hands over its ticket. Call actors are detached and
named (``callactor-<id>``, by the dispatcher): they do not die with the dispatcher. ``begin``
returns at once and the call runs here to its end; then the actor stores the record itself
(the store, or this node's spool), reports ``CALL_END``, and answers ``wait_end`` to whichever
dispatcher asks. ``info`` lets a restarted dispatcher adopt it. After a completed call the
dispatcher ``reset``s it back into the warm pool (up to CALL_ACTOR_MAX_CALLS calls).

After each turn the call's checkpoint goes to the dispatcher (fire-and-forget): when this
actor dies, another one ``resume``s the call from it; ``hand_over`` (a drain) stops the call
here at its next turn boundary without hanging up (``voice_ai.calls.resume``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from typing import Any

import psutil
import ray

from actors.appointments_client import AppointmentsClient
from actors.breaker_registry import RayBoard
from actors.caller_actor import RayCallerLines
from actors.hub_client import RayTelemetry
from actors.names import BREAKER_REGISTRY, DISPATCHER
from actors.pool_client import RayPoolPort
from actors.pool_layout import needs_breakers, pool_size
from actors.store_writer import durable_records
from actors.worker_setup import forward_logs
from voice_ai.agent.call import receptionist_factory, receptionist_settings
from voice_ai.agent.profile import load_profile
from voice_ai.calls.host import CallHost
from voice_ai.calls.ports import ActorInfo, CallEnd, CallTicket, ProcessStats, ResumeReport
from voice_ai.config import Settings
from voice_ai.pipeline.checkpoint import SavedCheckpoint
from voice_ai.pipeline.runtime import CallRuntime
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transport import CallTransport
from voice_ai.pipeline.transports import answer_offer
from voice_ai.pipeline.vad import load_vad
from voice_ai.providers.ports import PoolPort
from voice_ai.records import CallRecord, TurnTimings
from voice_ai.resilience.gate import BoundedBoard
from voice_ai.webrtc.signalling import SdpAnswer

logger = logging.getLogger("voice_ai.call")


@ray.remote(max_restarts=0, max_task_retries=0)
class CallActor:
    def __init__(self, settings: Settings, name: str = "callactor",
                 ticket: CallTicket | None = None) -> None:
        forward_logs(settings.ray_namespace)
        self._settings = settings
        self._node_id = ray.get_runtime_context().get_node_id()
        self._proc = psutil.Process(os.getpid())
        self._proc.cpu_percent()
        self._runtime: CallRuntime | None = None
        self._telemetry = RayTelemetry(settings.ray_namespace)
        self._host = CallHost(
            name, self._node_id, os.getpid(),
            durable_records(settings, self._node_id,
                            observer=self._telemetry.spool_observer(self._node_id)),
            self._telemetry, report_timeout_s=settings.actor_reply_timeout_s)
        # transports built ahead of their call: browser calls answered, lines stood by
        self._offered: dict[str, CallTransport] = {}
        self._dispatcher: Any = None  # where checkpoints go (looked up on the first one)
        if ticket is not None:  # a cold start: begin this call as soon as we are ready
            self._host.begin(ticket, self, prepare=self.warm_up)

    async def prepare(self) -> ActorInfo:
        """Warm up (once): reach the pools, load the VAD, build the stages."""
        await self.warm_up()
        return self._host.info()

    async def warm_up(self) -> dict[str, Any]:
        """``prepare``, returning where and how long (benchmarks)."""
        started = time.perf_counter()
        s = self._settings
        if self._runtime is None:
            if s.call_actor_nice:
                # Linux niceness is per thread: this is the actor's event loop thread, where
                # the call runs, and the threads it starts from now on (VAD inference)
                os.nice(s.call_actor_nice)
            if s.call_actor_slow_callback_ms > 0:  # diagnostics: what holds the loop up
                loop = asyncio.get_running_loop()
                loop.set_debug(True)
                loop.slow_callback_duration = s.call_actor_slow_callback_ms / 1000
            ns = s.ray_namespace

            async def connect(stage: str, provider: str) -> PoolPort:
                return RayPoolPort.named(stage, provider, pool_size(s, stage, provider), ns)

            # the registry may be restarting: a turn never waits on it (BoundedBoard)
            board = (BoundedBoard(RayBoard(ray.get_actor(BREAKER_REGISTRY, namespace=ns)))
                     if needs_breakers(s) else None)
            # the receptionist (docs/agent.md): the profile's greeting and tools, booking
            # through the store writer
            profile = load_profile(s.agent_profile_path)
            self._runtime = CallRuntime(
                receptionist_settings(s, profile), connect, board, vad_loader=load_vad,
                node_id=self._node_id, agent_factory=receptionist_factory(
                    profile, AppointmentsClient(namespace=ns)),
                caller_lines=RayCallerLines(s))  # simulated callers live on caller hosts
        first = not self._runtime.prepared
        info = await self._runtime.prepare()
        if first:
            # what the actor loaded to serve calls (modules, plugins, the VAD, the stages)
            # lives as long as the actor: kept out of the collector's sight, or every full
            # collection walks it all (146-164 ms pauses of the call's loop, mid-turn,
            # measured 2026-12-01; docs/performance.md)
            gc.freeze()
        return {"node_id": self._node_id, "pid": os.getpid(),
                "prepare_s": time.perf_counter() - started, "placement": info.placement}

    # --- the call's life (voice_ai.calls.host) ----------------------------------------------
    async def answer_offer(self, ticket: CallTicket) -> SdpAnswer:
        """A browser call: build its transport from the offer and answer it; ``begin`` then
        runs the call on that transport."""
        await self.prepare()
        transport, answer = await answer_offer(ticket.spec, self._settings)
        self._offered[ticket.call_id] = transport
        return answer

    async def begin(self, ticket: CallTicket) -> None:
        """Start the call and return: it runs here to its end, whoever watches."""
        await self.prepare()
        await self._close_offered(but=ticket.call_id)
        self._host.begin(ticket, self)

    async def stand_by(self, ticket: CallTicket) -> bool:
        """Join the caller's line ahead of a drain's hand-over (``CallRuntime.stand_by``):
        ``resume`` then carries the call on that leg."""
        await self.prepare()
        assert self._runtime is not None
        await self._close_offered(but="")
        transport = await self._runtime.stand_by(ticket.spec)
        if transport is None:
            return False
        self._offered[ticket.call_id] = transport
        return True

    async def _close_offered(self, *, but: str) -> None:
        """Close transports built for calls that did not come here (a drain's call that
        ended before it handed over): their legs would stand by for nothing."""
        for call_id in [c for c in self._offered if c != but]:
            stale = self._offered.pop(call_id)
            try:
                await stale.aclose()
            except Exception as e:
                logger.warning("unused transport not closed cleanly", extra={
                    "call_id": call_id, "error": f"{type(e).__name__}: {e}"})

    async def wait_end(self, call_id: str) -> CallEnd:
        return await self._host.wait_end(call_id)

    async def resume(self, ticket: CallTicket) -> ResumeReport:
        """Carry on a call another actor began (``ticket.spec.resume``): rejoin its caller,
        restore its checkpoint, and return once listening (or why the call ended first)."""
        await self.prepare()
        assert self._runtime is not None
        self._runtime.resume_plan(ticket.spec)  # an unreadable checkpoint: refused, not begun
        await self._close_offered(but=ticket.call_id)
        self._host.begin(ticket, self)
        return await self._host.wait_listening(ticket.call_id)

    def hand_over(self, call_id: str) -> bool:
        """Stop the call ``call_id`` at its next turn boundary; another actor carries it on."""
        return self._host.hand_over(call_id)

    def info(self) -> ActorInfo:
        return self._host.info()

    def reset(self) -> None:
        self._host.reset()

    async def run_call(self, spec: CallSpec) -> CallRecord:
        """Run one call to its end (``CallHost`` calls this; benchmarks may call it directly)."""
        await self.prepare()
        assert self._runtime is not None
        telemetry = self._telemetry

        host = self._host

        def on_turn(turn: TurnTimings) -> None:
            telemetry.turn(spec.call_id, turn)

        def on_listening(_setup_s: float) -> None:
            host.listening(time.time())

        return await self._runtime.run_call(spec, transport=self._offered.pop(spec.call_id, None),
                                            on_turn=on_turn, on_listening=on_listening,
                                            on_checkpoint=self._checkpoint,
                                            handover=host.handover)

    def _checkpoint(self, saved: SavedCheckpoint) -> None:
        """Keep the call's latest checkpoint here (``info``) and hand it to the dispatcher,
        head-pinned, which outlives this actor and its node (fire-and-forget)."""
        self._host.note_checkpoint(saved)
        if self._dispatcher is None:
            self._dispatcher = ray.get_actor(DISPATCHER, namespace=self._settings.ray_namespace)
        self._dispatcher.checkpoint.remote(saved)

    def stats(self) -> ProcessStats:
        # RSS from /proc/PID/statm: USS would walk every mapping (smaps) on each 2 s poll,
        # a measurable share of a busy call actor's CPU
        return ProcessStats(self._node_id, os.getpid(), self._proc.memory_info().rss,
                            self._proc.cpu_percent())
