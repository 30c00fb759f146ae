"""The busy message for a caller over MAX_CONCURRENT_CALLS, spoken with the local TTS pool."""

from __future__ import annotations

from livekit import rtc

from actors.pool_client import PoolClient
from actors.pool_layout import LOCAL_PROVIDER, pool_layout
from voice_ai.audio import slice_frames
from voice_ai.config import Settings
from voice_ai.telephony.livekit_transport import play_busy_and_hangup


async def play_busy(settings: Settings, room: str) -> None:
    """Join ``room``, say BUSY_MESSAGE (cached by the TTS pool with ENABLE_CACHING), hang up."""
    piper = next(p for p in pool_layout(settings)["tts"] if p.provider == LOCAL_PROVIDER["tts"])
    voice = await PoolClient.connect("tts", piper.provider, piper.size,
                                     settings.ray_namespace)
    pcm = b"".join([chunk async for chunk in voice.synthesize(settings.busy_message)])
    frames: list[rtc.AudioFrame] = slice_frames(pcm, voice.sample_rate, frame_ms=20)
    await play_busy_and_hangup(settings, room, frames=frames)
