"""The embedded default LLM: a livekit ``llm.LLM`` that routes and phrases, no weights.

``ReceptionistLLM`` reads the chat context AgentSession gives it and streams back either a
``FunctionToolCall`` (AgentSession runs the tool, then asks again with its output) or the
reply text, decided by ``voice_ai.agent.router`` from the business profile. It holds no call
state (everything is in the chat context), answers in well under a millisecond, and never
makes a fact up. docs/agent.md compares it with small GGUF models and says why it is the
default.
"""

from __future__ import annotations

import json
from typing import Any

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, llm, utils
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from voice_ai.agent.profile import BusinessProfile
from voice_ai.agent.router import (
    OFFER_PERSON,
    Exchange,
    Reply,
    ToolCall,
    route,
    speak_tool_result,
)

__all__ = ["ReceptionistLLM", "conversation", "respond"]


def conversation(chat_ctx: llm.ChatContext) -> list[Exchange]:
    """The chat context as the router reads it (tool calls paired with their outputs)."""
    calls: dict[str, llm.FunctionCall] = {}
    out: list[Exchange] = []
    for item in chat_ctx.items:
        if item.type == "message" and item.role in ("user", "assistant"):
            text = (item.text_content or "").strip()
            if text:
                out.append(Exchange(role=item.role, text=text))
        elif item.type == "function_call":
            calls[item.call_id] = item
        elif item.type == "function_call_output":
            call = calls.get(item.call_id)
            try:
                args = json.loads(call.arguments) if call is not None else {}
            except json.JSONDecodeError:
                args = {}
            out.append(Exchange(role="tool", text=item.output, tool=item.name,
                                args={str(k): str(v) for k, v in args.items()},
                                is_error=item.is_error))
    return out


def respond(profile: BusinessProfile, chat_ctx: llm.ChatContext, tool_names: frozenset[str],
            *, allow_tools: bool = True) -> ToolCall | Reply:
    """The next step: speak the tools' results if they just ran, else route the caller."""
    items = conversation(chat_ctx)
    results = []
    for item in reversed(items):
        if item.role != "tool":
            break
        results.append(item)
    if results:
        return Reply(" ".join(speak_tool_result(r) for r in reversed(results)))
    step = route(profile, items, tool_names if allow_tools else frozenset())
    if isinstance(step, ToolCall) and step.name not in tool_names:
        return Reply(OFFER_PERSON)
    return step


class ReceptionistLLM(llm.LLM[Any]):
    """Deterministic routing to the tools; replies from the profile and the tools' answers."""

    def __init__(self, profile: BusinessProfile) -> None:
        super().__init__()
        self.profile = profile

    @property
    def model(self) -> str:
        return "receptionist-router"

    @property
    def provider(self) -> str:
        return "local"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        return _RouterStream(self, chat_ctx=chat_ctx, tools=tools or [],
                             conn_options=conn_options, allow_tools=tool_choice != "none")


class _RouterStream(llm.LLMStream):
    _llm: ReceptionistLLM

    def __init__(self, receptionist: ReceptionistLLM, *, chat_ctx: llm.ChatContext,
                 tools: list[llm.Tool], conn_options: APIConnectOptions,
                 allow_tools: bool) -> None:
        super().__init__(receptionist, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._allow_tools = allow_tools

    async def _run(self) -> None:
        names = frozenset(t.id for t in self._tools if isinstance(t, llm.Tool))
        step = respond(self._llm.profile, self._chat_ctx, names, allow_tools=self._allow_tools)
        request_id = utils.shortuuid("router_")
        if isinstance(step, ToolCall):
            call = llm.FunctionToolCall(name=step.name, arguments=json.dumps(step.args),
                                        call_id=utils.shortuuid("call_"))
            delta = llm.ChoiceDelta(role="assistant", tool_calls=[call])
        else:
            delta = llm.ChoiceDelta(role="assistant", content=step.text)
        self._event_ch.send_nowait(llm.ChatChunk(id=request_id, delta=delta))
