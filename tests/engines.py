"""Test engines: the real local models loaded once per session, and scripted fakes.

Fakes follow the same protocols as the real engines (``voice_ai.providers.engines``), like
livekit-agents' own ``tests/fake_stt.py``: scripted outputs, optional delays and failures.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache

from voice_ai.config import Settings
from voice_ai.errors import ProviderError
from voice_ai.providers.engines import ChatMessage
from voice_ai.providers.factory import build_llm_engine, build_stt_engine, build_tts_engine


@cache
def local_engines() -> tuple[object, object, object]:
    settings = Settings()
    return (build_stt_engine(settings, "whisper"), build_llm_engine(settings, "local"),
            build_tts_engine(settings, "piper"))


@dataclass
class ScriptedLLM:
    """Replies with the given texts in order (the last one repeats), token by token."""

    replies: list[str]
    delay_s: float = 0.0
    fail_with: ProviderError | None = None
    name: str = "scripted"
    requests: list[list[ChatMessage]] = field(default_factory=list)

    async def generate(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        self.requests.append(messages)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_with is not None:
            raise self.fail_with
        reply = self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]
        for word in reply.split(" "):
            yield word + " "
