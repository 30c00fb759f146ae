"""Silero VAD, tuned by OPTIMIZATION_LEVEL (how long a silence ends the caller's speech)."""

from __future__ import annotations

from livekit.agents import vad

from voice_ai.config import Settings

__all__ = ["load_vad"]


def load_vad(settings: Settings) -> vad.VAD:
    """Load the VAD model once per process. Import the plugin on the main thread first."""
    from livekit.plugins import silero

    min_silence_s, _min_delay_s = settings.endpointing
    return silero.VAD.load(min_silence_duration=min_silence_s)
