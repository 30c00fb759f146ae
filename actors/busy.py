"""The busy message for a caller over MAX_CONCURRENT_CALLS, spoken with the local TTS pool."""

from __future__ import annotations

from livekit import rtc

from actors.pool_client import RayPoolPort
from actors.pool_layout import LOCAL_PROVIDER, pool_size
from voice_ai.audio import slice_frames
from voice_ai.config import Settings
from voice_ai.providers.pool import ProviderPool
from voice_ai.providers.pooled import PooledTTS
from voice_ai.telephony.livekit_transport import play_busy_and_hangup


async def play_busy(settings: Settings, room: str) -> None:
    """Join ``room``, say BUSY_MESSAGE (cached by the TTS pool with ENABLE_CACHING), hang up."""
    piper = LOCAL_PROVIDER["tts"]
    port = RayPoolPort.named("tts", piper, pool_size(settings, "tts", piper),
                             settings.ray_namespace)
    voice = await PooledTTS.connect(ProviderPool(port))
    async with voice.synthesize(settings.busy_message) as stream:
        pcm = b"".join([ev.frame.data.tobytes() async for ev in stream])
    frames: list[rtc.AudioFrame] = slice_frames(pcm, voice.sample_rate, frame_ms=20)
    await play_busy_and_hangup(settings, room, frames=frames)
