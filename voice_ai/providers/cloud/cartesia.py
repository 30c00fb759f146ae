"""Cartesia text-to-speech through ``livekit.plugins.cartesia`` (``/tts/bytes``, streamed)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from livekit.agents import APIConnectOptions, APIError
from livekit.plugins import cartesia

from voice_ai.config import Settings
from voice_ai.providers.cloud._http import SessionSource, within
from voice_ai.resilience.classify import to_provider_error

__all__ = ["CartesiaEngine"]

DEFAULT_BASE_URL = "https://api.cartesia.ai"  # the plugin's default


class CartesiaEngine:
    """``SpeechSynthesizer``: mono 16-bit PCM at ``sample_rate``, streamed as it arrives."""

    name = "cartesia"

    def __init__(self, settings: Settings, *, sample_rate: int = 24_000) -> None:
        if settings.cartesia_api_key is None:
            raise ValueError("CartesiaEngine needs CARTESIA_API_KEY")
        self.sample_rate = sample_rate
        self._api_key = settings.cartesia_api_key.get_secret_value()
        self._model = settings.cartesia_model
        self._voice = settings.cartesia_voice
        self._base_url = settings.cartesia_base_url
        self._timeout_s = settings.provider_timeout_s
        self._sessions = SessionSource(pooled=settings.enable_connection_pooling)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Audio chunks; ``provider_timeout_s`` bounds the wait for each one."""
        async with self._sessions.session() as http:
            plugin = cartesia.TTS(
                api_key=self._api_key, model=self._model, voice=self._voice,
                sample_rate=self.sample_rate, http_session=http,
                base_url=self._base_url or DEFAULT_BASE_URL,
            )
            options = APIConnectOptions(max_retry=0, timeout=self._timeout_s)
            async with plugin.synthesize(text, conn_options=options) as stream:
                frames = aiter(stream)
                while True:
                    try:
                        event = await within(anext(frames), self._timeout_s)
                    except StopAsyncIteration:
                        return
                    except (APIError, TimeoutError, aiohttp.ClientError, OSError) as e:
                        raise to_provider_error(e, self.name) from e
                    yield event.frame.data.tobytes()

    async def aclose(self) -> None:
        await self._sessions.aclose()
