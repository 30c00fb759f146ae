"""Deepgram speech-to-text through ``livekit.plugins.deepgram`` (live WebSocket API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
from aiohttp import WSCloseCode
from livekit import rtc
from livekit.agents import APIConnectOptions, APIError, stt
from livekit.plugins import deepgram

from voice_ai.config import Settings
from voice_ai.providers.cloud._http import SessionSource, within
from voice_ai.resilience.classify import to_provider_error

__all__ = ["DeepgramEngine"]

DEFAULT_BASE_URL = "https://api.deepgram.com/v1/listen"  # the plugin's default
FRAME_S = 0.02
POLL_S = 0.02


class DeepgramEngine:
    """``SpeechToText``: one utterance -> one streaming session -> its final transcript."""

    name = "deepgram"

    def __init__(self, settings: Settings) -> None:
        if settings.deepgram_api_key is None:
            raise ValueError("DeepgramEngine needs DEEPGRAM_API_KEY")
        self._api_key = settings.deepgram_api_key.get_secret_value()
        self._model = settings.deepgram_model
        self._base_url = settings.deepgram_base_url
        self._timeout_s = settings.provider_timeout_s
        self._sessions = SessionSource(pooled=settings.enable_connection_pooling)

    async def transcribe(self, pcm16: bytes, sample_rate: int, language: str = "en") -> str:
        try:
            async with self._sessions.session() as http:
                return await within(self._transcribe(http, pcm16, sample_rate, language),
                                    self._timeout_s)
        except (APIError, TimeoutError, aiohttp.ClientError, OSError) as e:
            raise to_provider_error(e, self.name) from e

    async def aclose(self) -> None:
        await self._sessions.aclose()

    async def _transcribe(
        self, http: aiohttp.ClientSession, pcm16: bytes, sample_rate: int, language: str
    ) -> str:
        watch = _SocketWatch(http)
        plugin = deepgram.STT(
            model=self._model, language=language, api_key=self._api_key,
            http_session=cast(aiohttp.ClientSession, watch), sample_rate=sample_rate,
            interim_results=False, base_url=self._base_url or DEFAULT_BASE_URL,
        )
        # retries belong to the breaker and the fallback, not to the plugin
        options = APIConnectOptions(max_retry=0, timeout=self._timeout_s)
        stream = plugin.stream(conn_options=options)
        try:
            for frame in _frames(pcm16, sample_rate):
                stream.push_frame(frame)
            stream.end_input()  # flushes: the plugin sends Finalize, then CloseStream
            texts: list[str] = []
            events = aiter(stream)
            while (event := await _next_event(events, watch)) is not None:
                if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT and event.alternatives:
                    texts.append(event.alternatives[0].text)
            return " ".join(t.strip() for t in texts if t.strip())
        finally:
            await stream.aclose()


class _SocketWatch:
    """The HTTP session as the plugin sees it, remembering the WebSocket it opens.

    Deepgram closes the socket once it has sent every result after ``CloseStream``, but the
    plugin's stream ends only when its keepalive loop next wakes (up to 5 s later). The closed
    socket is the engine's signal that the transcript is complete.
    """

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self.socket: aiohttp.ClientWebSocketResponse | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def closed_cleanly(self) -> bool:
        """Closed by Deepgram with 1000; a dropped socket makes the plugin raise instead."""
        socket = self.socket
        return socket is not None and socket.closed and socket.close_code == WSCloseCode.OK

    async def ws_connect(self, *args: Any, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        self.socket = await self._session.ws_connect(*args, **kwargs)
        return self.socket


async def _next_event(
    events: AsyncIterator[stt.SpeechEvent], watch: _SocketWatch
) -> stt.SpeechEvent | None:
    """The next event, or None at the end of the stream or once the socket closed cleanly."""
    pending = asyncio.ensure_future(anext(events))
    try:
        closed_polls = 0
        while not pending.done():
            await asyncio.wait({pending}, timeout=POLL_S)
            if not pending.done() and watch.closed_cleanly():
                closed_polls += 1
                if closed_polls > 2:  # results read before the close have had time to arrive
                    return None
        try:
            return pending.result()
        except StopAsyncIteration:
            return None
    finally:
        if not pending.done():  # given up on (socket closed, timeout): never leave it dangling
            pending.cancel()
            pending.add_done_callback(_consume)


def _consume(task: asyncio.Future[stt.SpeechEvent]) -> None:
    if not task.cancelled():
        task.exception()  # the stream's end, already handled


def _frames(pcm16: bytes, sample_rate: int) -> list[rtc.AudioFrame]:
    step = int(sample_rate * FRAME_S) * 2
    frames = []
    for i in range(0, len(pcm16) - len(pcm16) % 2, step):
        chunk = pcm16[i : i + step]
        frames.append(rtc.AudioFrame(chunk, sample_rate, 1, len(chunk) // 2))
    return frames
