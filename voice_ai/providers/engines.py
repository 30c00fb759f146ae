"""The provider engine interface that pool actors host.

An engine does one kind of work for any call: turn an utterance into text, a conversation into
a stream of tokens, or text into a stream of audio. Local models (faster-whisper, llama.cpp,
Piper) and cloud providers (Deepgram, OpenAI, Cartesia through the livekit plugins) implement
the same three protocols, so the pools, breakers and fallbacks do not care which is behind them.

Engines raise ``TransientProviderError`` / ``PermanentProviderError`` (``voice_ai.errors``) so the
circuit breakers can count only transient failures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

__all__ = ["ChatMessage", "SpeechSynthesizer", "SpeechToText", "TextGenerator"]

# {"role": "system" | "user" | "assistant", "content": str}
ChatMessage = dict[str, str]


@runtime_checkable
class SpeechToText(Protocol):
    name: str  # provider label, e.g. "whisper", "deepgram"

    async def transcribe(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        """Transcribe one utterance of mono 16-bit PCM; return the text ('' for none)."""
        ...


@runtime_checkable
class TextGenerator(Protocol):
    name: str  # "local", "openai"

    def generate(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """Stream the assistant's reply as text deltas."""
        ...


@runtime_checkable
class SpeechSynthesizer(Protocol):
    name: str  # "piper", "cartesia"
    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Stream mono 16-bit PCM at ``sample_rate`` for ``text``, in chunks as they are ready."""
        ...
