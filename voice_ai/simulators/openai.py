"""OpenAI simulator: streaming ``POST /v1/chat/completions`` (server-sent events) and
``GET /v1/models``, enough for ``livekit.plugins.openai.LLM`` to work unchanged against it.

Replies come from a scripted queue (``replies``) or ``default_reply``; they are streamed one
word per chunk, the first after ``ttfb_s``, then one every ``chunk_interval_s``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import deque
from typing import Any

from aiohttp import web

from voice_ai.simulators.server import SimulatorServer

__all__ = ["OpenAISimulator"]


class OpenAISimulator(SimulatorServer):
    name = "openai"

    def __init__(
        self, *args: Any, default_reply: str = "Sure, I can help you with that.", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.default_reply = default_reply
        self.replies: deque[str] = deque()
        self.last_messages: list[dict[str, Any]] = []
        """The ``messages`` of the last chat request, to check what the client sent."""

    @property
    def api_url(self) -> str:
        """What to pass as the plugin's ``base_url`` (``OPENAI_BASE_URL``)."""
        return f"{self.base_url}/v1"

    def script(self, *texts: str) -> None:
        self.replies.extend(texts)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        refusal = await self.admit(request)
        if refusal is not None:
            return refusal
        model = {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "simulator"}
        return web.json_response({"object": "list", "data": [model]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        refusal = await self.admit(request)
        if refusal is not None:
            return refusal
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            error = {"message": "missing api key", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=401)
        body = await request.json()
        self.last_messages = list(body.get("messages", []))
        model = str(body.get("model", "gpt-4o-mini"))
        reply = self.replies.popleft() if self.replies else self.default_reply
        tokens = re.findall(r"\S+\s*", reply)
        chunk_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"

        await asyncio.sleep(self.first_delay_s())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await _event(response, _chunk(chunk_id, model, {"role": "assistant", "content": ""}))
        for i, token in enumerate(tokens):
            if i > 0:
                await asyncio.sleep(self.latency.chunk_delay_s())
            if self.drops_mid_stream() and i == len(tokens) // 2:
                self.drop(request)
                return response
            await _event(response, _chunk(chunk_id, model, {"content": token}))
        await _event(response, _chunk(chunk_id, model, {}, finish_reason="stop"))
        usage = {"prompt_tokens": 10, "completion_tokens": len(tokens),
                 "total_tokens": 10 + len(tokens)}
        await _event(response, {**_chunk(chunk_id, model, None), "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


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
