"""Build a provider from settings: the livekit ``stt.STT`` / ``llm.LLM`` / ``tts.TTS`` a pool
worker hosts (or a call holds in-process), and the local models underneath them.

    stage  local (embedded default)       cloud (livekit plugin)
    stt    whisper  -> WhisperSTT          deepgram  -> deepgram.STT (live)
    llm    local    -> ReceptionistLLM     openai    -> openai.LLM
                       (LOCAL_LLM=llama: LlamaLLM)
    tts    piper    -> PiperTTS            cartesia  -> cartesia.TTS (WebSocket)
"""

from __future__ import annotations

from typing import Any

import aiohttp
from livekit.agents import llm, stt, tts

from voice_ai.config import Settings
from voice_ai.providers.local.llama import LlamaEngine
from voice_ai.providers.local.piper import PiperEngine
from voice_ai.providers.local.whisper import WhisperEngine

__all__ = [
    "LOCAL_PROVIDER",
    "Provider",
    "build_llm_engine",
    "build_provider",
    "build_stt_engine",
    "build_tts_engine",
    "is_local",
]

Provider = stt.STT[Any] | llm.LLM[Any] | tts.TTS[Any]
LOCAL_PROVIDER = {"stt": "whisper", "llm": "local", "tts": "piper"}


def is_local(stage: str, provider: str) -> bool:
    return LOCAL_PROVIDER.get(stage) == provider


def build_stt_engine(settings: Settings, provider: str = "whisper") -> WhisperEngine:
    if provider != "whisper":
        raise ValueError(f"no local STT model {provider!r}: expected whisper")
    from voice_ai.providers.local.models import default_whisper_model

    return WhisperEngine(
        model_path=settings.whisper_model_path or default_whisper_model(),
        device=settings.whisper_device,
        compute_type=settings.whisper_compute_type,
        window_s=settings.whisper_window_s,
    )


def build_llm_engine(settings: Settings, provider: str = "local") -> LlamaEngine:
    if provider != "local":
        raise ValueError(f"no local LLM model {provider!r}: expected local")
    from voice_ai.providers.local.models import default_llm_model

    return LlamaEngine(
        model_path=settings.llm_model_path or default_llm_model(),
        max_tokens=settings.llm_max_tokens,
        threads=settings.llm_threads,
    )


def build_tts_engine(settings: Settings, provider: str = "piper") -> PiperEngine:
    if provider != "piper":
        raise ValueError(f"no local TTS voice {provider!r}: expected piper")
    from voice_ai.providers.local.models import default_piper_voice

    return PiperEngine(
        voice_path=settings.piper_voice_path or default_piper_voice(),
        cache_size=64 if settings.enable_caching else 0,
    )


def tts_frame_ms(settings: Settings, sample_rate: int) -> int:
    """AUDIO_BUFFER_SIZE samples as milliseconds of audio (the frames a voice hands on)."""
    return max(10, settings.audio_buffer_size * 1000 // sample_rate)


def build_provider(settings: Settings, stage: str, provider: str, *,
                   http_session: aiohttp.ClientSession | None = None) -> Provider:
    """The livekit provider for ``provider`` at ``stage``. Cloud plugins need ``http_session``
    (outside a livekit job there is no ambient one)."""
    if stage == "stt" and provider == "whisper":
        from voice_ai.providers.local.whisper import WhisperSTT

        return WhisperSTT(build_stt_engine(settings))
    if stage == "llm" and provider == "local":
        if settings.local_llm == "receptionist":  # the embedded default (docs/agent.md)
            from voice_ai.agent.engine import ReceptionistLLM
            from voice_ai.agent.profile import load_profile

            return ReceptionistLLM(load_profile(settings.agent_profile_path))
        from voice_ai.providers.local.llama import LlamaLLM

        return LlamaLLM(build_llm_engine(settings))
    if stage == "tts" and provider == "piper":
        from voice_ai.providers.local.piper import PiperTTS

        engine = build_tts_engine(settings)
        return PiperTTS(engine, frame_ms=tts_frame_ms(settings, engine.sample_rate))
    from voice_ai.providers.cloud import build

    if stage == "llm" and provider == "openai":
        return build.openai_llm(settings)
    if http_session is None:
        raise ValueError(f"the {provider} plugin needs an HTTP session outside a livekit job")
    if stage == "stt" and provider == "deepgram":
        return build.deepgram_stt(settings, http_session=http_session)
    if stage == "tts" and provider == "cartesia":
        return build.cartesia_tts(settings, http_session=http_session)
    raise ValueError(f"unknown {stage} provider {provider!r}: expected "
                     f"{_CHOICES.get(stage, 'a known stage (stt, llm, tts)')}")


_CHOICES = {"stt": "whisper or deepgram", "llm": "local or openai", "tts": "piper or cartesia"}
