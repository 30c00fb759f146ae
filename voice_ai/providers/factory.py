"""Build the engine a pool worker hosts, from settings and a provider name."""

from __future__ import annotations

from voice_ai.config import Settings
from voice_ai.providers.engines import SpeechSynthesizer, SpeechToText, TextGenerator

__all__ = ["build_llm_engine", "build_stt_engine", "build_tts_engine"]


def build_stt_engine(settings: Settings, provider: str) -> SpeechToText:
    if provider == "whisper":
        from voice_ai.providers.local.models import default_whisper_model
        from voice_ai.providers.local.whisper import WhisperEngine

        return WhisperEngine(
            model_path=settings.whisper_model_path or default_whisper_model(),
            device=settings.whisper_device,
            compute_type=settings.whisper_compute_type,
            window_s=settings.whisper_window_s,
        )
    if provider == "deepgram":
        from voice_ai.providers.cloud import DeepgramEngine

        return DeepgramEngine(settings)
    raise ValueError(f"unknown STT provider {provider!r}: expected whisper or deepgram")


def build_llm_engine(settings: Settings, provider: str) -> TextGenerator:
    if provider == "local":
        from voice_ai.providers.local.llama import LlamaEngine
        from voice_ai.providers.local.models import default_llm_model

        return LlamaEngine(
            model_path=settings.llm_model_path or default_llm_model(),
            max_tokens=settings.llm_max_tokens,
            threads=settings.llm_threads,
        )
    if provider == "openai":
        from voice_ai.providers.cloud import OpenAIEngine

        return OpenAIEngine(settings)
    raise ValueError(f"unknown LLM provider {provider!r}: expected local or openai")


def build_tts_engine(settings: Settings, provider: str) -> SpeechSynthesizer:
    if provider == "piper":
        from voice_ai.providers.local.models import default_piper_voice
        from voice_ai.providers.local.piper import PiperEngine

        return PiperEngine(
            voice_path=settings.piper_voice_path or default_piper_voice(),
            chunk_samples=settings.audio_buffer_size,
            cache_size=64 if settings.enable_caching else 0,
        )
    if provider == "cartesia":
        from voice_ai.providers.cloud import CartesiaEngine

        return CartesiaEngine(settings)
    raise ValueError(f"unknown TTS provider {provider!r}: expected piper or cartesia")
