"""A call actor's insides, without Ray: providers built once from ports, then calls run one
at a time.

    runtime = CallRuntime(settings, connect_pool, board, vad_loader=load_vad)
    await runtime.prepare()                      # pools reached, VAD loaded, stages built
    record = await runtime.run_call(spec)        # -> CallRecord (never raises for call errors)

``connect_pool(stage, provider)`` gives the ``PoolPort`` of a pool (Ray actors in a call actor,
``MemoryPool`` in tests). ``board`` is the cluster's breaker board (``ProviderBoard``), needed
when a cloud provider is configured. Where a cloud provider's live session runs is
``CLOUD_PLACEMENT``: ``call`` builds the livekit plugin here (one Deepgram WebSocket, one
OpenAI client and one Cartesia WebSocket pool per call actor, the breaker and the account's
quota asked through ``board`` at each stream or request); ``pool`` reaches the provider's pool
actors through the port like the local models. The local models always live in their pools.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from livekit.agents import llm, stt, tts, vad

from voice_ai.config import Settings
from voice_ai.pipeline.checkpoint import SavedCheckpoint, decode
from voice_ai.pipeline.line import CallerLines, LineTransport
from voice_ai.pipeline.restore import ResumePlan
from voice_ai.pipeline.session import AgentFactory, CallProviders, CallSession, receptionist
from voice_ai.pipeline.simulated import SimulatedCaller
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transport import CallTransport
from voice_ai.pipeline.transports import build_transport, caller_order
from voice_ai.providers.factory import build_provider, is_local
from voice_ai.providers.pool import ProviderPool
from voice_ai.providers.pooled import PooledLLM, PooledSTT, PooledTTS
from voice_ai.providers.ports import PoolPort
from voice_ai.records import CallRecord, TurnTimings
from voice_ai.resilience.gate import ProviderBoard
from voice_ai.resilience.llm_stage import StageLLM
from voice_ai.resilience.stt_stage import StageSTT, SttPolicy
from voice_ai.resilience.tts_stage import StageTTS

__all__ = ["CallRuntime", "PoolConnector", "PrepareInfo", "build_call_providers"]

logger = logging.getLogger("voice_ai.call")
PoolConnector = Callable[[str, str], Awaitable[PoolPort]]


@dataclass(frozen=True, slots=True)
class PrepareInfo:
    stt: str
    llm: str
    tts: str
    placement: str
    turn_detection: str


async def build_call_providers(
    settings: Settings, connect_pool: PoolConnector, board: ProviderBoard | None, *,
    vad_model: vad.VAD, http_session: aiohttp.ClientSession | None = None,
) -> tuple[CallProviders, tts.TTS[Any]]:
    """The call's three stages and the simulated caller's voice (always Piper)."""
    pools: dict[tuple[str, str], ProviderPool] = {}

    async def pool(stage: str, provider: str) -> ProviderPool:
        if (stage, provider) not in pools:
            pools[stage, provider] = ProviderPool(await connect_pool(stage, provider))
        return pools[stage, provider]

    async def cloud(stage: str, provider: str) -> Any:
        if settings.cloud_placement == "call":
            return build_provider(settings, stage, provider, http_session=http_session)
        if stage == "stt":
            return PooledSTT(await pool(stage, provider), streaming=True)
        if stage == "llm":
            return PooledLLM(await pool(stage, provider))
        return await PooledTTS.connect(await pool(stage, provider))

    def gated(stage: str) -> ProviderBoard | None:
        if board is None:
            raise ValueError(f"{stage}: a cloud provider needs the breaker board")
        return board

    s = settings
    whisper = PooledSTT(await pool("stt", "whisper"), streaming=False)
    preflight = s.stt_preflight_silence_s if s.stt_preflight else None
    policy = SttPolicy(stall_timeout_s=s.stt_stall_timeout_s, preflight_silence_s=preflight)
    stt_stage: stt.STT[Any]
    if is_local("stt", s.stt_provider):
        stt_stage = StageSTT(whisper, name="whisper", vad=vad_model, policy=policy)
    else:
        stt_stage = StageSTT(await cloud("stt", s.stt_provider), name=s.stt_provider,
                             vad=vad_model, fallback=whisper, fallback_name="whisper",
                             board=gated("stt"), policy=policy)

    local_llm = PooledLLM(await pool("llm", "local"))
    llm_stage: llm.LLM[Any]
    if is_local("llm", s.llm_provider):
        llm_stage = StageLLM(local_llm, name="local")
    else:
        llm_stage = StageLLM(await cloud("llm", s.llm_provider), name=s.llm_provider,
                             fallback=local_llm, fallback_name="local", board=gated("llm"))

    piper = await PooledTTS.connect(await pool("tts", "piper"))
    tts_stage: tts.TTS[Any]
    if is_local("tts", s.tts_provider):
        tts_stage = StageTTS(piper, name="piper")
    else:
        tts_stage = StageTTS(await cloud("tts", s.tts_provider), name=s.tts_provider,
                             fallback=piper, fallback_name="piper", board=gated("tts"))

    providers = CallProviders(
        stt=stt_stage, llm=llm_stage, tts=tts_stage, vad=vad_model,
        turn_detection="vad" if is_local("stt", s.stt_provider) else "stt")
    return providers, piper


class CallRuntime:
    def __init__(self, settings: Settings, connect_pool: PoolConnector,
                 board: ProviderBoard | None, *, vad_loader: Callable[[Settings], vad.VAD],
                 node_id: str = "", agent_factory: AgentFactory = receptionist,
                 caller_lines: CallerLines | None = None) -> None:
        self.settings = settings
        self.node_id = node_id
        self.agent_factory = agent_factory
        self._lines = caller_lines
        self._connect_pool = connect_pool
        self._board = board
        self._vad_loader = vad_loader
        self._providers: CallProviders | None = None
        self._caller_voice: tts.TTS[Any] | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def prepared(self) -> bool:
        return self._providers is not None

    async def prepare(self) -> PrepareInfo:
        """Reach the pools, load the VAD, build the stages (and the cloud plugins when they
        live in the call). Idempotent."""
        s = self.settings
        if self._providers is None:
            cloud_here = s.cloud_placement == "call" and any(
                not is_local(stage, name) for stage, name in
                (("stt", s.stt_provider), ("llm", s.llm_provider), ("tts", s.tts_provider)))
            if cloud_here and self._http is None:
                self._http = aiohttp.ClientSession()
            self._providers, self._caller_voice = await build_call_providers(
                s, self._connect_pool, self._board, vad_model=self._vad_loader(s),
                http_session=self._http)
        p = self._providers
        return PrepareInfo(stt=s.stt_provider, llm=s.llm_provider, tts=s.tts_provider,
                           placement=s.cloud_placement, turn_detection=p.turn_detection)

    async def transport_for(self, spec: CallSpec) -> CallTransport:
        """A simulated caller is dialled on its caller host when this runtime has
        ``caller_lines`` (call actors: the caller then lives outside this process, as a phone
        caller does; dialling the same call id again reaches the same caller); otherwise it
        runs here (tests, no-Ray paths)."""
        order = caller_order(spec, self.settings)
        if order is not None and self._lines is not None:
            return build_transport(spec, self.settings, line=await self._lines.dial(order))
        return build_transport(spec, self.settings, caller_voice=self._caller_voice)

    async def stand_by(self, spec: CallSpec) -> CallTransport | None:
        """A leg to the caller of ``spec``, connected now while another call actor still
        carries the call, carrying it from the moment that actor leaves (a drain's
        make-before-break): pass it to ``run_call`` when the call is resumed here. ``None``
        where the caller is not on a line (a LiveKit room, a browser): the call is then
        rejoined when it resumes, and what the caller says in between is not heard."""
        order = caller_order(spec, self.settings)
        if order is None or self._lines is None:
            return None
        transport = build_transport(spec, self.settings, line=await self._lines.dial(order),
                                    standby=True)
        await transport.prepare()
        return transport

    @staticmethod
    def resume_plan(spec: CallSpec) -> ResumePlan | None:
        """How ``spec`` carries on a call another actor began (``spec.resume``), its checkpoint
        read; ``CheckpointError`` if it cannot be (unknown version, another call's)."""
        order = spec.resume
        if order is None:
            return None
        checkpoint = (decode(order.checkpoint, call_id=spec.call_id)
                      if order.checkpoint is not None else None)
        return ResumePlan(checkpoint, bridging=order.bridging)

    async def run_call(self, spec: CallSpec, *, transport: CallTransport | None = None,
                       on_turn: Callable[[TurnTimings], None] | None = None,
                       on_listening: Callable[[float], None] | None = None,
                       on_checkpoint: Callable[[SavedCheckpoint], None] | None = None,
                       handover: asyncio.Event | None = None) -> CallRecord:
        """Run ``spec``'s call to its end. ``transport``: one built already (a browser call
        answered before it runs, a resumed call's line); otherwise built here from the spec.
        ``on_checkpoint`` / ``handover`` / ``spec.resume``: see ``CallSession.run``."""
        await self.prepare()
        assert self._providers is not None
        resume = self.resume_plan(spec)
        session = CallSession(self.settings, self._providers, call_id=spec.call_id,
                              node_id=self.node_id, on_turn=on_turn, on_listening=on_listening,
                              agent_factory=self.agent_factory)
        if isinstance(transport, LineTransport) and transport.dropped:
            await transport.aclose()  # a leg that stood by and was let go since: a new leg
            transport = None
        transport = transport or await self.transport_for(spec)
        record = await session.run(transport, admitted_at=spec.admitted_at, warm=spec.warm,
                                   resume=resume, on_checkpoint=on_checkpoint,
                                   handover=handover)
        if isinstance(transport, SimulatedCaller) and transport.recorder is not None:
            path = self.settings.recordings_dir / f"{spec.call_id}.wav"
            transport.recorder.save(path)
            record = dataclasses.replace(record, recording_path=str(path))
        elif isinstance(transport, LineTransport) and transport.recording_path:
            record = dataclasses.replace(record, recording_path=transport.recording_path)
        return record

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


