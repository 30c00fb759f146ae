"""OpenAI chat completions through ``livekit.plugins.openai`` (streamed tokens)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from livekit.agents import APIConnectOptions, APIError, llm
from livekit.agents.types import NOT_GIVEN
from livekit.plugins import openai

from voice_ai.config import Settings
from voice_ai.providers.cloud._http import within
from voice_ai.providers.engines import ChatMessage
from voice_ai.resilience.classify import to_provider_error

__all__ = ["OpenAIEngine"]


class OpenAIEngine:
    """``TextGenerator``. Pooled: one plugin client (keeps its connections) for the engine's
    life; not pooled: a client per request, closed after it."""

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        if settings.openai_api_key is None:
            raise ValueError("OpenAIEngine needs OPENAI_API_KEY")
        self._api_key = settings.openai_api_key.get_secret_value()
        self._model = settings.openai_model
        self._base_url = settings.openai_base_url
        self._timeout_s = settings.provider_timeout_s
        self._pooled = settings.enable_connection_pooling
        self._shared: openai.LLM | None = None

    async def generate(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """Text deltas; ``provider_timeout_s`` bounds the wait for each one."""
        plugin = self._plugin()
        options = APIConnectOptions(max_retry=0, timeout=self._timeout_s)
        try:
            async with plugin.chat(chat_ctx=_chat_context(messages), conn_options=options) as s:
                chunks = aiter(s)
                while True:
                    try:
                        chunk = await within(anext(chunks), self._timeout_s)
                    except StopAsyncIteration:
                        return
                    except (APIError, TimeoutError, aiohttp.ClientError, OSError) as e:
                        raise to_provider_error(e, self.name) from e
                    if chunk.delta is not None and chunk.delta.content:
                        yield chunk.delta.content
        finally:
            if plugin is not self._shared:
                await plugin.aclose()

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()
            self._shared = None

    def _plugin(self) -> openai.LLM:
        if self._pooled and self._shared is not None:
            return self._shared
        plugin = openai.LLM(
            model=self._model, api_key=self._api_key, max_retries=0,
            base_url=self._base_url or NOT_GIVEN,
        )
        if self._pooled:
            self._shared = plugin
        return plugin


def _chat_context(messages: list[ChatMessage]) -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    for message in messages:
        role = message["role"]
        if role not in ("system", "user", "assistant", "developer"):
            raise ValueError(f"unknown chat role {role!r}")
        ctx.add_message(role=role, content=message["content"])  # type: ignore[arg-type]
    return ctx
