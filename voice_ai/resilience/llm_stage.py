"""A call's LLM: the configured provider, its cluster-wide breaker, a fallback.

Each reply is one breaker request, which reports success at its first chunk (its breaker slot
is then free: a burst of calls is not held up by whole replies still streaming); a failure
after that is still counted. Refused (breaker open, quota reached), the reply comes from
the fallback (the local model). A provider that fails before its first chunk is replaced by
the fallback for the whole reply; one that fails mid-reply is continued by the fallback, which
is given the words already spoken (as the assistant's partial message) so the caller hears one
reply, not a repeat. Chunks pass through unchanged: text and tool calls alike, so livekit's
function tools work whichever provider answered. A reply cancelled by the session before its
first chunk (barge-in, a discarded preemptive generation) reports no outcome: it said nothing
about the provider's health.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from livekit.agents import APIConnectOptions, llm, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from voice_ai.resilience.gate import Outcome, ProviderBoard, report_soon
from voice_ai.resilience.served import SERVED, Served, ServedEvent

__all__ = ["StageLLM"]

logger = logging.getLogger("voice_ai.fallback")
NO_RETRY = APIConnectOptions(max_retry=0)


class StageLLM(llm.LLM[ServedEvent]):
    def __init__(self, primary: llm.LLM[Any], *, name: str,
                 fallback: llm.LLM[Any] | None = None, fallback_name: str = "",
                 board: ProviderBoard | None = None) -> None:
        super().__init__()
        if fallback is not None and board is None:
            raise ValueError("a fallback needs the breaker board that decides when to use it")
        self.primary, self.fallback = primary, fallback
        self.name, self.fallback_name = name, fallback_name
        self.board = board
        for inner in (primary, fallback):
            if inner is not None:
                inner.on("metrics_collected", self._forward_metrics)

    @property
    def provider(self) -> str:
        return self.name

    def _forward_metrics(self, *args: Any) -> None:
        self.emit("metrics_collected", *args)

    async def _prewarm_impl(self) -> None:
        """livekit prewarms the session's LLM (its connection, before the first reply); the
        stage passes that on to the provider, or the first reply of every call paid for it
        (~70 ms with the OpenAI plugin on loopback)."""
        self.primary.prewarm()

    def chat(
        self, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = NO_RETRY,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        options: dict[str, Any] = {}
        if isinstance(parallel_tool_calls, bool):
            options["parallel_tool_calls"] = parallel_tool_calls
        if tool_choice is not NOT_GIVEN:
            options["tool_choice"] = tool_choice
        return _StageLLMStream(self, chat_ctx=chat_ctx, tools=list(tools or []),
                               conn_options=conn_options, options=options)


class _StageLLMStream(llm.LLMStream):
    _llm: StageLLM

    def __init__(self, stage: StageLLM, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool],
                 conn_options: APIConnectOptions, options: dict[str, Any]) -> None:
        super().__init__(stage, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._options = options
        self._spoken = ""

    async def _run(self) -> None:
        stage = self._llm
        if stage.board is None:
            await self._relay(stage.primary, stage.name, self._chat_ctx, fallback=False)
            return
        board = stage.board
        lease = utils.shortuuid("llm_")
        admission = await board.acquire(stage.name, lease)
        alive = False

        def on_alive() -> None:  # the provider answers: its breaker slot is free at once
            nonlocal alive
            alive = True
            report_soon(board, stage.name, Outcome.success())

        try:
            if admission.allowed:
                try:
                    await self._relay(stage.primary, stage.name, self._chat_ctx, fallback=False,
                                      on_alive=on_alive)
                except asyncio.CancelledError:
                    if not alive:
                        await board.report(stage.name, None)
                    raise
                except Exception as e:
                    outcome = Outcome.failure(e)
                    await board.report(stage.name, outcome.later() if alive else outcome)
                    if stage.fallback is None:
                        raise
                    logger.warning("provider failed, reply continues on the fallback",
                                   extra={"stage": "llm", "provider": stage.name,
                                          "fallback": stage.fallback_name,
                                          "error": type(e).__name__,
                                          "mid_reply": bool(self._spoken)})
                else:
                    if not alive:  # it ended without a word
                        await board.report(stage.name, Outcome.success())
                    return
            assert stage.fallback is not None
            await self._relay(stage.fallback, stage.fallback_name, self._fallback_context(),
                              fallback=True)
        finally:
            if admission.allowed:
                await board.release(stage.name, lease)

    def _fallback_context(self) -> llm.ChatContext:
        if not self._spoken.strip():
            return self._chat_ctx
        ctx = self._chat_ctx.copy()
        ctx.add_message(role="assistant", content=self._spoken)
        return ctx

    async def _relay(self, model: llm.LLM[Any], name: str, ctx: llm.ChatContext, *,
                     fallback: bool, on_alive: Callable[[], None] | None = None) -> None:
        async with model.chat(chat_ctx=ctx, tools=self._tools, conn_options=NO_RETRY,
                              **self._options) as stream:
            announced = False
            async for chunk in stream:
                if not announced and chunk.has_response():
                    announced = True  # the latest announcement is the one the turn records
                    self._llm.emit(SERVED, Served("llm", name, fallback=fallback))
                    if on_alive is not None:
                        on_alive()
                if chunk.delta is not None and chunk.delta.content:
                    self._spoken += chunk.delta.content
                self._event_ch.send_nowait(chunk)
