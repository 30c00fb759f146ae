"""The cloud providers are livekit's own plugins, configured from ``Settings``.

No plugin retries: a failed request or stream goes to the breaker and the fallback
(``voice_ai.resilience``), which decide what the caller hears next. Plugins used outside a
livekit job need an ``aiohttp`` session: pass the process's one (``http_session``).

Import on the main thread, or in a Ray worker whose setup hook imported the plugins:
livekit-agents registers plugins only there.
"""

from __future__ import annotations

import aiohttp
from livekit.agents.types import NOT_GIVEN
from livekit.plugins import cartesia, deepgram, openai

from voice_ai.config import Settings
from voice_ai.providers.clauses import text_tokenizer
from voice_ai.providers.cloud.tool_schemas import SchemaCachingLLM

__all__ = ["cartesia_tts", "deepgram_stt", "openai_llm"]

DEEPGRAM_URL = "https://api.deepgram.com/v1/listen"  # the plugin's default
CARTESIA_URL = "https://api.cartesia.ai"
CARTESIA_SAMPLE_RATE = 24_000


def _key(value: object, name: str) -> str:
    secret = getattr(value, "get_secret_value", None)
    if secret is None or not secret():
        raise ValueError(f"{name} is not set")
    return str(secret())


def deepgram_stt(settings: Settings, *, http_session: aiohttp.ClientSession) -> deepgram.STT:
    """Live recognition with interim results; Deepgram's endpointing (``speech_final`` after
    DEEPGRAM_ENDPOINTING_MS of silence) ends the caller's turn (turn detection "stt")."""
    return deepgram.STT(
        model=settings.deepgram_model, language="en-US",
        api_key=_key(settings.deepgram_api_key, "DEEPGRAM_API_KEY"),
        interim_results=True, endpointing_ms=settings.deepgram_endpointing_ms,
        http_session=http_session, base_url=settings.deepgram_base_url or DEEPGRAM_URL,
    )


def openai_llm(settings: Settings) -> openai.LLM:
    """livekit's OpenAI plugin; the tools' schemas are built once per process, not per
    request (``voice_ai.providers.cloud.tool_schemas``)."""
    return SchemaCachingLLM(
        model=settings.openai_model, api_key=_key(settings.openai_api_key, "OPENAI_API_KEY"),
        base_url=settings.openai_base_url or NOT_GIVEN, max_retries=0,
    )


def cartesia_tts(settings: Settings, *, http_session: aiohttp.ClientSession) -> cartesia.TTS:
    """The WebSocket API with text streamed in at TTS_TEXT_GRANULARITY (clause: the first
    words are spoken while the LLM writes the rest of the sentence)."""
    return cartesia.TTS(
        api_key=_key(settings.cartesia_api_key, "CARTESIA_API_KEY"),
        model=settings.cartesia_model, voice=settings.cartesia_voice,
        sample_rate=CARTESIA_SAMPLE_RATE, http_session=http_session,
        tokenizer=text_tokenizer(settings.tts_text_granularity),
        base_url=settings.cartesia_base_url or CARTESIA_URL,
    )
