"""One call: an ``AgentSession`` over a transport, streaming end to end, timed per turn.

``CallSession`` is the whole call pipeline and knows nothing of Ray: the call actor, the
no-Ray paths and the tests run this same object; only the providers and the transport passed
in differ. What makes it answer fast:

- STT streams for the whole call (Deepgram live) or is VAD-segmented (whisper), and the
  caller's turn ends where the provider is best at telling: Deepgram's endpointing (livekit
  turn detection "stt") or the VAD ("vad") for whisper (``CallProviders.turn_detection``);
- preemptive generation (on by default): the LLM starts on the transcript, even an early
  one (PREFLIGHT), before the turn is confirmed; livekit cancels it if the caller goes on
  and the cancelled reply is never played nor kept in the chat history;
- TTS takes the LLM's text as it streams and speaks from the first clause.

The agent comes from a factory (``agent_factory``), so a receptionist with function tools
runs here unchanged; tools work through the pools (``voice_ai.providers.pooled``) and with
in-process providers alike.

A call can outlive its call actor (``voice_ai.pipeline.checkpoint``): with ``on_checkpoint`` the
session hands on a checkpoint after each turn; with a ``ResumePlan`` a new session carries the
call on from one (its turns, the agent's chat context, a bridging line instead of the
greeting); with ``handover`` set it stops at the next turn boundary without hanging up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from livekit.agents import Agent, AgentSession, APIConnectOptions, llm, stt, tts, vad
from livekit.agents.llm import ChatMessage
from livekit.agents.voice.agent_session import SessionConnectOptions

from voice_ai.config import Settings
from voice_ai.pipeline.checkpoint import CallHandedOver, SavedCheckpoint, bridging_line
from voice_ai.pipeline.handover import OpenTurn, turn_boundary
from voice_ai.pipeline.line import LineTransport
from voice_ai.pipeline.restore import Checkpointer, ResumePlan, chat_context
from voice_ai.pipeline.simulated import SimulatedCaller
from voice_ai.pipeline.transport import CallerSpeechMark, CallTransport
from voice_ai.records import CallRecord, EndReason, TurnTimings
from voice_ai.resilience.served import SERVED, Served

__all__ = ["AgentContext", "AgentFactory", "CallProviders", "CallSession", "Receptionist",
           "receptionist"]

logger = logging.getLogger(__name__)
NO_RETRY = APIConnectOptions(max_retry=0)  # the stages' breakers and fallbacks decide
_CLOSING: set[asyncio.Task[None]] = set()  # sessions closing behind a handover

TurnDetection = Literal["stt", "vad"]


@dataclass
class CallProviders:
    """What a call needs from providers, ready (a warm call actor holds these).

    ``stt`` / ``llm`` / ``tts`` are livekit providers; the stages
    (``voice_ai.resilience.{stt,llm,tts}_stage``) emit ``"served"`` events, which the turns
    record. ``turn_detection``: "stt" when the STT's endpointing ends the caller's turn
    (Deepgram), "vad" when the VAD does (whisper).
    """

    stt: stt.STT[Any]
    llm: llm.LLM[Any]
    tts: tts.TTS[Any]
    vad: vad.VAD
    turn_detection: TurnDetection = "vad"


class Receptionist(Agent):
    """The plain receptionist: the system prompt, no tools."""

    def __init__(self, instructions: str) -> None:
        super().__init__(instructions=instructions)


@dataclass(frozen=True)
class AgentContext:
    """What an agent factory knows about the call it makes an agent for."""

    settings: Settings
    call_id: str
    transport: CallTransport
    """The call's transport: its actions (``transfer``, ``send_dtmf``, ``end_call``) are what
    a receptionist's tools act on."""


AgentFactory = Callable[[AgentContext], Agent]
"""Makes the livekit ``Agent`` of one call (called once per call, before the session starts).
Its ``@function_tool``s run in the call, whichever LLM answers (in-process or through the
pool: tool schemas travel out, tool calls come back)."""


def receptionist(ctx: AgentContext) -> Agent:
    return Receptionist(ctx.settings.system_prompt)


@dataclass
class _TurnBuilder:
    """Pairs caller messages with the agent reply that answered them; records which provider
    served each stage from the stages' ``served`` events."""

    settings: Settings
    marks: Callable[[], list[CallerSpeechMark]]
    on_turn: Callable[[TurnTimings], None] | None
    turns: list[TurnTimings] = field(default_factory=list)
    _user: list[ChatMessage] = field(default_factory=list)
    _served: dict[str, Served] = field(default_factory=dict)
    _heard_by: Served | None = None  # the STT that served this turn's caller words

    def on_served(self, served: Served) -> None:
        self._served[served.stage] = served

    def add(self, item: ChatMessage) -> None:
        if item.role == "user":
            # the STT's "served" comes with the final transcript, before livekit commits the
            # user message; taken now, so the caller's next line, transcribed before this
            # turn's reply has finished playing (a loaded machine), is not cleared with it
            self._heard_by = self._served.pop("stt", None) or self._heard_by
            self._user.append(item)
        elif item.role == "assistant" and self._user:
            self._close(item)

    def _provider(self, stage: str) -> str:
        served = self._heard_by if stage == "stt" else self._served.get(stage)
        return served.provider if served is not None else ""

    def _close(self, reply: ChatMessage) -> None:
        user_metrics: dict[str, Any] = dict(self._user[0].metrics or {})
        reply_metrics: dict[str, Any] = dict(reply.metrics or {})
        index = len(self.turns)
        marks = self.marks()
        mark = marks[index] if index < len(marks) else None
        e2e = mark.response_latency_s if mark is not None else None
        if e2e is None:
            e2e = reply_metrics.get("e2e_latency")
        ended = (mark.ended_speaking_at if mark is not None
                 else user_metrics.get("stopped_speaking_at", time.time()))
        turn = TurnTimings(
            index=index,
            ended_speaking_at=float(ended),
            e2e_s=e2e,
            stt_s=user_metrics.get("transcription_delay"),
            end_of_turn_s=user_metrics.get("end_of_turn_delay"),
            llm_ttft_s=reply_metrics.get("llm_node_ttft"),
            tts_ttfb_s=reply_metrics.get("tts_node_ttfb"),
            stt_provider=self._provider("stt"),
            llm_provider=self._provider("llm"),
            tts_provider=self._provider("tts"),
            fallback_used=any(s is not None and s.fallback for s in (
                self._heard_by, self._served.get("llm"), self._served.get("tts"))),
            interrupted=bool(reply.interrupted),
            user_text=" ".join((m.text_content or "") for m in self._user).strip(),
            agent_text=(reply.text_content or "").strip(),
        )
        self._user.clear()
        self._heard_by = None
        self._served.pop("llm", None)
        self._served.pop("tts", None)
        self.turns.append(turn)
        if self.on_turn is not None:
            self.on_turn(turn)


class CallSession:
    """Runs one call to the end and returns its ``CallRecord``; never raises for call errors."""

    def __init__(
        self,
        settings: Settings,
        providers: CallProviders,
        *,
        call_id: str,
        node_id: str = "",
        on_turn: Callable[[TurnTimings], None] | None = None,
        on_listening: Callable[[float], None] | None = None,
        agent_factory: AgentFactory = receptionist,
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.call_id = call_id
        self.node_id = node_id
        self._on_turn = on_turn
        self._on_listening = on_listening
        self._agent_factory = agent_factory

    def _agent_session(self) -> AgentSession[Any]:
        s = self.settings
        vad_silence_s, min_delay_s = s.endpointing
        p = self.providers
        if p.turn_detection == "stt":
            # The STT's endpointing (DEEPGRAM_ENDPOINTING_MS) sends its final sooner than the
            # VAD's silence: that final starts the reply (preemptive generation), but the turn
            # is committed only once the caller has been quiet as long as the VAD asks. A
            # pause at a comma (Piper's: 0.30-0.37 s) is not the end of a turn.
            min_delay_s = max(min_delay_s, vad_silence_s)
        return AgentSession(
            vad=p.vad, stt=p.stt, llm=p.llm, tts=p.tts,
            turn_handling={
                "turn_detection": p.turn_detection,
                "endpointing": {"min_delay": min_delay_s, "max_delay": 3.0},
                "interruption": {"mode": "vad"},
                "preemptive_generation": {"enabled": s.preemptive_generation,
                                          "preemptive_tts": s.preemptive_tts},
            },
            conn_options=SessionConnectOptions(stt_conn_options=NO_RETRY,
                                               llm_conn_options=NO_RETRY,
                                               tts_conn_options=NO_RETRY),
            aec_warmup_duration=None,
            user_away_timeout=None,
        )

    async def run(
        self, transport: CallTransport, *, admitted_at: float, warm: bool = True,
        resume: ResumePlan | None = None,
        on_checkpoint: Callable[[SavedCheckpoint], None] | None = None,
        handover: asyncio.Event | None = None,
    ) -> CallRecord:
        """Run the call to its end. ``resume``: carry on a call another actor began (see the
        module docstring). ``handover`` set: at the next turn boundary hand on a last
        checkpoint and raise ``CallHandedOver`` with the record so far (the caller stays)."""
        started_at = admitted_at
        setup_s: float | None = None
        end_reason = EndReason.ERROR
        error = ""
        agent: Agent | None = None
        handed_over = False
        checkpoints = None if on_checkpoint is None else Checkpointer(
            call_id=self.call_id, started_at=admitted_at, warm=warm,
            transport=type(transport).__name__, max_bytes=self.settings.checkpoint_max_bytes,
            sink=on_checkpoint, resume=resume)

        def save_checkpoint() -> None:
            if checkpoints is not None and agent is not None:
                checkpoints.save(agent.chat_ctx, builder.turns)

        def on_turn(turn: TurnTimings) -> None:
            transport.report_turn(turn)
            if self._on_turn is not None:
                self._on_turn(turn)
            save_checkpoint()

        builder = _TurnBuilder(self.settings, transport.speech_marks, on_turn,
                               turns=list(resume.turns) if resume is not None else [])
        session = self._agent_session()
        served_by = (self.providers.stt, self.providers.llm, self.providers.tts)
        for provider in served_by:
            provider.on(SERVED, builder.on_served)

        open_turn = OpenTurn()

        def on_item(ev: Any) -> None:
            if isinstance(ev.item, ChatMessage):
                builder.add(ev.item)
                if ev.item.role == "user":
                    open_turn.taken()

        session.on("conversation_item_added", on_item)
        session.on("user_state_changed", open_turn.on_user_state)
        session.on("agent_state_changed", open_turn.on_agent_state)
        try:
            prep_started = time.time()
            await transport.prepare()
            caller_prep_s = time.time() - prep_started
            await transport.connect()
            await transport.attach(session)
            agent = self._agent_factory(AgentContext(self.settings, self.call_id, transport))
            if resume is not None and resume.checkpoint is not None:
                await agent.update_chat_ctx(chat_context(resume.checkpoint.chat))
            await session.start(agent, record=False)
            setup_s = time.time() - admitted_at - caller_prep_s
            if self._on_listening is not None:
                self._on_listening(setup_s)
            if checkpoints is not None:
                checkpoints.set_setup(setup_s)
            if resume is None:
                session.say(self.settings.greeting)
            elif resume.bridging:
                session.say(bridging_line(resume.checkpoint))
            if resume is not None and resume.checkpoint is not None:
                setup_s = resume.checkpoint.setup_s  # the call's, not this actor's
            # the transport's watchdog ends an over-long call (MAX_CALL_DURATION_S) with its
            # own reason; this bound only guards against a transport that never ends
            ended = await self._wait_end(transport, session, handover, open_turn)
            if ended is None:  # a turn boundary after a handover was asked for
                save_checkpoint()
                handed_over, end_reason = True, EndReason.CALLER_HANGUP
            else:
                end_reason = ended
        except TimeoutError:
            end_reason = EndReason.TIMEOUT
            error = f"call exceeded MAX_CALL_DURATION_S={self.settings.max_call_duration_s:g}"
        except Exception as e:
            logger.exception("call failed", extra={"call_id": self.call_id})
            end_reason, error = EndReason.ERROR, f"{type(e).__name__}: {e}"
        finally:
            if handed_over:
                await self._leave(session, transport)
            else:
                await self._close(session, transport)
            for provider in served_by:
                provider.off(SERVED, builder.on_served)
        unanswered = (transport.unanswered
                      if isinstance(transport, SimulatedCaller | LineTransport) else [])
        if unanswered and end_reason is EndReason.CALLER_HANGUP:
            end_reason = EndReason.ERROR
            error = f"agent did not answer caller turn(s) {unanswered}"
        if not error and transport.end_detail:
            error = transport.end_detail
        record = CallRecord(
            call_id=self.call_id,
            direction=transport.direction,
            started_at=started_at,
            ended_at=time.time(),
            end_reason=end_reason,
            caller_masked=transport.caller_masked,
            node_id=self.node_id,
            setup_s=setup_s,
            warm_start=warm,
            error=error,
            turns=tuple(builder.turns),
        )
        if handed_over:
            raise CallHandedOver(record)
        return record

    async def _wait_end(self, transport: CallTransport, session: AgentSession[Any],
                        handover: asyncio.Event | None,
                        open_turn: OpenTurn) -> EndReason | None:
        """The transport's end reason, or None at a turn boundary once ``handover`` is set
        (``voice_ai.pipeline.handover.turn_boundary``)."""
        limit = self.settings.max_call_duration_s + 60.0
        if handover is None:
            return await asyncio.wait_for(transport.wait_ended(), timeout=limit)

        async def boundary() -> None:
            await handover.wait()
            await turn_boundary(session, transport, open_turn)

        ended = asyncio.ensure_future(transport.wait_ended())
        waits = [ended, asyncio.ensure_future(boundary())]
        try:
            done, _ = await asyncio.wait(waits, timeout=limit,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                if not task.done():
                    task.cancel()
        if ended in done:
            return ended.result()
        if not done:
            raise TimeoutError
        return None

    async def _leave(self, session: AgentSession[Any], transport: CallTransport) -> None:
        """Hand the call over: leave the caller's line at once without hanging up (the next
        call actor is about to take it) and close the session behind, in the background (its
        teardown takes seconds the caller would otherwise hear as silence)."""
        try:
            await transport.aclose()
        finally:
            task = asyncio.create_task(self._close_session(session))
            _CLOSING.add(task)
            task.add_done_callback(_CLOSING.discard)

    async def _close_session(self, session: AgentSession[Any]) -> None:
        try:
            await session.aclose()
        except Exception:
            logger.exception("closing the session failed", extra={"call_id": self.call_id})

    async def _close(self, session: AgentSession[Any], transport: CallTransport) -> None:
        try:
            await transport.hangup()
            await session.aclose()
        except Exception:
            logger.exception("closing the session failed", extra={"call_id": self.call_id})
        finally:
            await transport.aclose()
