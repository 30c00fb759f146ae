"""The livekit side of a checkpoint: the agent's chat context in and out, and the checkpoint
built after each turn (``voice_ai.pipeline.checkpoint`` is the plain-data model).

``CallSession`` uses these when it is given a ``ResumePlan`` (carry a call on from a
checkpoint) or an ``on_checkpoint`` sink (save one after each turn):

    entries = chat_entries(agent.chat_ctx)        # messages + tool calls and their outputs
    agent.update_chat_ctx(chat_context(entries))  # before session.start(agent), in a new actor
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from livekit.agents import llm

from voice_ai.pipeline.checkpoint import (
    CallCheckpoint,
    ChatEntry,
    CheckpointError,
    SavedCheckpoint,
    seal,
)
from voice_ai.records import TurnTimings

__all__ = ["Checkpointer", "ResumePlan", "chat_context", "chat_entries"]

logger = logging.getLogger("voice_ai.call")


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """How a session carries a call on: from ``checkpoint`` (None: the call was lost before its
    first turn ended), saying the bridging line or not (a drain's handover says nothing)."""

    checkpoint: CallCheckpoint | None
    bridging: bool = True

    @property
    def turns(self) -> tuple[TurnTimings, ...]:
        return self.checkpoint.turns if self.checkpoint is not None else ()

    @property
    def resumes(self) -> int:
        return (self.checkpoint.resumes if self.checkpoint is not None else 0) + 1


def chat_entries(chat_ctx: llm.ChatContext) -> tuple[ChatEntry, ...]:
    """What of a chat context a new agent needs: the caller's and the agent's messages and the
    tool calls with their outputs. Instructions are left out (the new agent has its own)."""
    entries: list[ChatEntry] = []
    for item in chat_ctx.items:
        if item.type == "message" and item.role in ("user", "assistant"):
            text = item.raw_text_content or ""
            if text.strip():
                entries.append(ChatEntry("message", role=item.role, text=text,
                                         interrupted=item.interrupted))
        elif item.type == "function_call":
            entries.append(ChatEntry("function_call", name=item.name,
                                     arguments=item.arguments, call_id=item.call_id))
        elif item.type == "function_call_output":
            entries.append(ChatEntry("function_call_output", name=item.name, text=item.output,
                                     call_id=item.call_id, is_error=item.is_error))
    return tuple(entries)


def chat_context(entries: Sequence[ChatEntry]) -> llm.ChatContext:
    """A chat context holding ``entries``, in order."""
    ctx = llm.ChatContext.empty()
    for e in entries:
        if e.kind == "message":
            if e.role not in ("user", "assistant"):
                raise CheckpointError(f"checkpoint message with role {e.role!r}")
            ctx.add_message(role="user" if e.role == "user" else "assistant", content=e.text,
                            interrupted=e.interrupted)
        elif e.kind == "function_call":
            ctx.items.append(llm.FunctionCall(call_id=e.call_id, name=e.name,
                                              arguments=e.arguments))
        else:
            ctx.items.append(llm.FunctionCallOutput(call_id=e.call_id, name=e.name,
                                                    output=e.text, is_error=e.is_error))
    return ctx


class Checkpointer:
    """Builds the call's checkpoint at each turn end and hands the sealed form to ``sink``.

    A checkpoint that cannot be made (too large even trimmed) is logged and skipped: the
    previous one stays the latest, the call goes on."""

    def __init__(self, *, call_id: str, started_at: float, warm: bool, transport: str,
                 max_bytes: int, sink: Callable[[SavedCheckpoint], None],
                 resume: ResumePlan | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.call_id = call_id
        self._started_at = started_at
        self._warm = warm
        self._transport = transport
        self._max_bytes = max_bytes
        self._sink = sink
        self._resumes = resume.resumes if resume is not None else 0
        base = resume.checkpoint if resume is not None else None
        self._setup_s = base.setup_s if base is not None else None
        self._clock = clock
        self.saved = 0

    def set_setup(self, setup_s: float | None) -> None:
        """A resumed call keeps its first setup time; a new one reports its own once."""
        if self._setup_s is None:
            self._setup_s = setup_s

    def build(self, chat_ctx: llm.ChatContext, turns: Sequence[TurnTimings]) -> CallCheckpoint:
        last = turns[-1] if turns else None
        return CallCheckpoint(
            call_id=self.call_id, saved_at=self._clock(), turn_count=len(turns),
            started_at=self._started_at, chat=chat_entries(chat_ctx), turns=tuple(turns),
            stt_provider=last.stt_provider if last else "",
            llm_provider=last.llm_provider if last else "",
            tts_provider=last.tts_provider if last else "",
            transport=self._transport, setup_s=self._setup_s, warm=self._warm,
            resumes=self._resumes)

    def save(self, chat_ctx: llm.ChatContext, turns: Sequence[TurnTimings]) -> None:
        try:
            sealed = seal(self.build(chat_ctx, turns), self._max_bytes)
        except CheckpointError as e:
            logger.warning("checkpoint skipped", extra={"call_id": self.call_id,
                                                        "error": str(e)})
            return
        self.saved += 1
        try:
            self._sink(sealed)
        except Exception as e:  # the sink is fire-and-forget; the call goes on regardless
            logger.warning("checkpoint not handed on", extra={
                "call_id": self.call_id, "error": f"{type(e).__name__}: {e}"})
