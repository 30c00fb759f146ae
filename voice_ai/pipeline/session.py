"""One call: an ``AgentSession`` (VAD end of turn, barge-in) over a transport, timed per turn.

``CallSession`` is the whole call pipeline and knows nothing of Ray: the call actor, the no-Ray
benchmark baseline and the tests all run this same object; only the engines and the transport
passed in differ.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import Agent, AgentSession, vad
from livekit.agents.llm import ChatMessage

from voice_ai.config import Settings
from voice_ai.pipeline.transport import CallerSpeechMark, CallTransport
from voice_ai.providers.adapters import EngineLLM, EngineSTT, EngineTTS, ServedBy
from voice_ai.providers.engines import SpeechSynthesizer, SpeechToText, TextGenerator
from voice_ai.records import CallRecord, EndReason, TurnTimings

__all__ = ["CallEngines", "CallSession", "Receptionist"]

logger = logging.getLogger(__name__)


@dataclass
class CallEngines:
    """What a call needs from providers, already prepared (a warm call actor holds these)."""

    stt: SpeechToText
    llm: TextGenerator
    tts: SpeechSynthesizer
    vad: vad.VAD


class Receptionist(Agent):
    def __init__(self, instructions: str) -> None:
        super().__init__(instructions=instructions)


@dataclass
class _TurnBuilder:
    """Pairs caller messages with the agent reply that answered them."""

    settings: Settings
    marks: Callable[[], list[CallerSpeechMark]]
    served: ServedBy
    on_turn: Callable[[TurnTimings], None] | None
    turns: list[TurnTimings] = field(default_factory=list)
    _user: list[ChatMessage] = field(default_factory=list)

    def add(self, item: ChatMessage) -> None:
        if item.role == "user":
            self._user.append(item)
        elif item.role == "assistant" and self._user:
            self._close(item)

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
        s = self.settings
        fallback = (
            (self.served.stt not in ("", s.stt_provider))
            or (self.served.llm not in ("", s.llm_provider))
            or (self.served.tts not in ("", s.tts_provider))
        )
        turn = TurnTimings(
            index=index,
            ended_speaking_at=float(ended),
            e2e_s=e2e,
            stt_s=user_metrics.get("transcription_delay"),
            end_of_turn_s=user_metrics.get("end_of_turn_delay"),
            llm_ttft_s=reply_metrics.get("llm_node_ttft"),
            tts_ttfb_s=reply_metrics.get("tts_node_ttfb"),
            stt_provider=self.served.stt,
            llm_provider=self.served.llm,
            tts_provider=self.served.tts,
            fallback_used=fallback,
            interrupted=bool(reply.interrupted),
            user_text=" ".join((m.text_content or "") for m in self._user).strip(),
            agent_text=(reply.text_content or "").strip(),
        )
        self._user.clear()
        self.turns.append(turn)
        if self.on_turn is not None:
            self.on_turn(turn)


class CallSession:
    """Runs one call to the end and returns its ``CallRecord``; never raises for call errors."""

    def __init__(
        self,
        settings: Settings,
        engines: CallEngines,
        *,
        call_id: str,
        node_id: str = "",
        on_turn: Callable[[TurnTimings], None] | None = None,
        on_listening: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.call_id = call_id
        self.node_id = node_id
        self._on_turn = on_turn
        self._on_listening = on_listening

    def _agent_session(self, served: ServedBy) -> AgentSession[Any]:
        _vad_silence_s, min_delay_s = self.settings.endpointing
        return AgentSession(
            vad=self.engines.vad,
            stt=EngineSTT(self.engines.stt, served),
            llm=EngineLLM(self.engines.llm, served),
            tts=EngineTTS(self.engines.tts, served),
            turn_handling={
                "turn_detection": "vad",
                "endpointing": {"min_delay": min_delay_s, "max_delay": 3.0},
                "interruption": {"mode": "vad"},
                "preemptive_generation": {"enabled": False},
            },
            aec_warmup_duration=None,
            user_away_timeout=None,
        )

    async def run(
        self, transport: CallTransport, *, admitted_at: float, warm: bool = True
    ) -> CallRecord:
        served = ServedBy()
        started_at = admitted_at
        setup_s: float | None = None
        end_reason = EndReason.ERROR
        error = ""
        builder = _TurnBuilder(self.settings, transport.speech_marks, served, self._on_turn)
        session = self._agent_session(served)

        def on_item(ev: Any) -> None:
            if isinstance(ev.item, ChatMessage):
                builder.add(ev.item)

        session.on("conversation_item_added", on_item)
        try:
            prep_started = time.time()
            await transport.prepare()
            caller_prep_s = time.time() - prep_started
            await transport.connect()
            await transport.attach(session)
            await session.start(Receptionist(self.settings.system_prompt), record=False)
            setup_s = time.time() - admitted_at - caller_prep_s
            if self._on_listening is not None:
                self._on_listening(setup_s)
            session.say(self.settings.greeting)
            end_reason = await asyncio.wait_for(
                transport.wait_ended(), timeout=self.settings.max_call_duration_s
            )
        except TimeoutError:
            end_reason = EndReason.TIMEOUT
            error = f"call exceeded MAX_CALL_DURATION_S={self.settings.max_call_duration_s:g}"
        except Exception as e:
            logger.exception("call failed", extra={"call_id": self.call_id})
            end_reason, error = EndReason.ERROR, f"{type(e).__name__}: {e}"
        finally:
            await self._close(session, transport)
        unanswered = getattr(transport, "unanswered", [])
        if unanswered and end_reason is EndReason.CALLER_HANGUP:
            end_reason = EndReason.ERROR
            error = f"agent did not answer caller turn(s) {unanswered}"
        return CallRecord(
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

    async def _close(self, session: AgentSession[Any], transport: CallTransport) -> None:
        try:
            await transport.hangup()
            await session.aclose()
        except Exception:
            logger.exception("closing the session failed", extra={"call_id": self.call_id})
        finally:
            await transport.aclose()
