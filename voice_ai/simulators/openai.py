"""OpenAI simulator: streaming ``POST /v1/chat/completions`` (server-sent events) and
``GET /v1/models``, enough for ``livekit.plugins.openai.LLM`` to work unchanged against it.

Replies come from a scripted queue (``script``), a ``responder`` function, or ``default_reply``.
A reply is text, tool calls, or both, streamed as OpenAI streams them: a first chunk with the
role, the text in token-sized pieces (a word with its leading space, punctuation apart), then
each tool call as ``delta.tool_calls`` chunks (the first with ``index``, ``id``, ``type`` and the
function's ``name``; then the ``arguments`` JSON in pieces), a last chunk with
``finish_reason`` (``"tool_calls"`` or ``"stop"``) and a usage chunk. The first piece leaves
``ttfb_s`` after the request, every later one ``chunk_interval_s`` after the previous.

Every request is kept (``chat_requests``: model, messages, tools, ...) so tests can check what
the client sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from voice_ai.simulators.server import SimulatorServer

__all__ = ["ChatRequest", "OpenAISimulator", "ScriptedReply", "ToolCall", "tokens_of"]

_TOKEN_RE = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")
ARGUMENT_PIECE_CHARS = 6  # OpenAI streams tool-call arguments a few characters per chunk


def tokens_of(text: str) -> list[str]:
    """``text`` cut the way OpenAI streams it, roughly: ``["Sure", ",", " I", " can"]``."""
    return _TOKEN_RE.findall(text)


@dataclass(frozen=True)
class ToolCall:
    """One function call the simulated model makes; ``arguments`` is JSON text."""

    name: str
    arguments: str = "{}"
    call_id: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a tool call needs a function name")
        try:
            json.loads(self.arguments)
        except json.JSONDecodeError as e:
            raise ValueError(f"tool call {self.name!r}: arguments are not JSON: {e}") from None


@dataclass(frozen=True)
class ScriptedReply:
    """What the simulated model answers to one request: text, tool calls, or both (text first,
    as OpenAI sends it)."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    def __post_init__(self) -> None:
        if not self.text and not self.tool_calls:
            raise ValueError("a scripted reply needs text or tool calls")


@dataclass(frozen=True)
class ChatRequest:
    """One ``/v1/chat/completions`` request as the simulator received it."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    body: dict[str, Any] = field(default_factory=dict)
    received_at: float = 0.0
    """``time.monotonic()`` when the request arrived (its first token follows ``first_delay``)."""

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content", "")
                if isinstance(content, list):
                    return " ".join(str(p.get("text", "")) for p in content
                                    if isinstance(p, dict))
                return str(content)
        return ""

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("function", {}).get("name", "")) for t in self.tools]


Responder = Callable[[ChatRequest], ScriptedReply | str | None]


class OpenAISimulator(SimulatorServer):
    name = "openai"

    def __init__(
        self, *args: Any, default_reply: str = "Sure, I can help you with that.", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.default_reply = default_reply
        self.replies: deque[ScriptedReply] = deque()
        self.responder: Responder | None = None
        """Called for a request when the scripted queue is empty; None -> ``default_reply``."""
        self.chat_requests: list[ChatRequest] = []

    @property
    def api_url(self) -> str:
        """What to pass as the plugin's ``base_url`` (``OPENAI_BASE_URL``)."""
        return f"{self.base_url}/v1"

    @property
    def last_messages(self) -> list[dict[str, Any]]:
        """The ``messages`` of the last chat request."""
        return self.chat_requests[-1].messages if self.chat_requests else []

    def script(self, *replies: ScriptedReply | str) -> None:
        """Queue replies, one per request: text, or a ``ScriptedReply`` with tool calls."""
        self.replies.extend(ScriptedReply(text=r) if isinstance(r, str) else r for r in replies)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        refusal = await self.admit(request)
        if refusal is not None:
            return refusal
        model = {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "simulator"}
        return web.json_response({"object": "list", "data": [model]})

    def _reply_for(self, chat: ChatRequest) -> ScriptedReply:
        if self.replies:
            return self.replies.popleft()
        answer = self.responder(chat) if self.responder is not None else None
        if isinstance(answer, str):
            return ScriptedReply(text=answer)
        return answer if answer is not None else ScriptedReply(text=self.default_reply)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        refusal = await self.admit(request)
        if refusal is not None:
            return refusal
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            error = {"message": "missing api key", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=401)
        body = await request.json()
        chat = ChatRequest(
            model=str(body.get("model", "gpt-4o-mini")), messages=list(body.get("messages", [])),
            tools=list(body.get("tools", []) or []), tool_choice=body.get("tool_choice"),
            parallel_tool_calls=body.get("parallel_tool_calls"), body=body,
            received_at=received_at,
        )
        self.chat_requests.append(chat)
        reply = self._reply_for(chat)
        chunk_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        deltas = list(_deltas(reply))

        await self.pace(self.first_delay_s())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, delta in enumerate(deltas):
            if i > 0:
                await asyncio.sleep(self.latency.chunk_delay_s())
            if self.drops_mid_stream() and i == len(deltas) // 2:
                self.drop(request)
                return response
            await _event(response, _chunk(chunk_id, chat.model, delta))
        finish = "tool_calls" if reply.tool_calls else "stop"
        await _event(response, _chunk(chunk_id, chat.model, {}, finish_reason=finish))
        completion = len(deltas) - 1
        usage = {"prompt_tokens": 10, "completion_tokens": completion,
                 "total_tokens": 10 + completion}
        await _event(response, {**_chunk(chunk_id, chat.model, None), "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _deltas(reply: ScriptedReply) -> Iterator[dict[str, Any]]:
    """The ``delta`` of every chunk, in order; the first one carries the role (and the first
    token or the first tool call, as OpenAI's first content chunk does)."""
    pieces: list[dict[str, Any]] = [{"content": t} for t in tokens_of(reply.text)]
    for index, call in enumerate(reply.tool_calls):
        call_id = call.call_id or f"call_{uuid.uuid4().hex[:24]}"
        pieces.append({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                       "function": {"name": call.name, "arguments": ""}}]})
        args = call.arguments
        for start in range(0, len(args), ARGUMENT_PIECE_CHARS):
            piece = args[start : start + ARGUMENT_PIECE_CHARS]
            pieces.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    first = {"role": "assistant", "content": "" if reply.text else None}
    yield {**first, **pieces[0]}
    yield from pieces[1:]


def _chunk(
    chunk_id: str, model: str, delta: dict[str, Any] | None, finish_reason: str | None = None
) -> dict[str, Any]:
    choices = [] if delta is None else [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    ]
    return {"id": chunk_id, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": choices}


async def _event(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(data)}\n\n".encode())
