"""The real local models, loaded once per test session, and a call's providers built on them.

``local_engines()`` gives the models themselves (faster-whisper, llama.cpp, Piper);
``local_call_providers(settings)`` gives what a call actor builds from its pools
(``CallProviders`` + the simulated caller's Piper voice) with in-memory pools hosting the same
models in this process: the call path of production with the process boundary left out.
Scripted fakes live in ``tests.fakes.providers``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from livekit.agents import llm as lk_llm
from livekit.agents import tts

from voice_ai.config import Settings
from voice_ai.pipeline.runtime import build_call_providers
from voice_ai.pipeline.session import CallProviders
from voice_ai.pipeline.vad import load_vad
from voice_ai.providers.factory import (
    build_llm_engine,
    build_stt_engine,
    build_tts_engine,
    tts_frame_ms,
)
from voice_ai.providers.host import ProviderHost
from voice_ai.providers.local.llama import LlamaEngine, LlamaLLM
from voice_ai.providers.local.piper import PiperEngine, PiperTTS
from voice_ai.providers.local.whisper import WhisperEngine, WhisperSTT
from voice_ai.providers.memory import MemoryPool
from voice_ai.providers.ports import PoolPort


@cache
def local_engines() -> tuple[WhisperEngine, LlamaEngine, PiperEngine]:
    settings = Settings()
    return build_stt_engine(settings), build_llm_engine(settings), build_tts_engine(settings)


async def local_call_providers(
    settings: Settings, *, llm: lk_llm.LLM[Any] | None = None
) -> tuple[CallProviders, tts.TTS[Any]]:
    """The embedded default's call providers over the local models (``llm`` replaces the
    local LLM, e.g. a scripted one)."""
    whisper, llama, piper = local_engines()
    hosted = {
        ("stt", "whisper"): WhisperSTT(whisper),
        ("llm", "local"): llm or LlamaLLM(llama),
        ("tts", "piper"): PiperTTS(piper, frame_ms=tts_frame_ms(settings, piper.sample_rate)),
    }

    async def connect(stage: str, provider: str) -> PoolPort:
        return MemoryPool([ProviderHost(stage, provider, hosted[stage, provider])])

    return await build_call_providers(settings, connect, None, vad_model=load_vad(settings))
