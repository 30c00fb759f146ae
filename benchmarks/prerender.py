"""The callers' lines rendered once with Piper, so both sides of the benchmark send the same audio.

``prerender`` asks the running system's Piper pool for every scenario line. That both renders
the audio once and leaves it in the pool's phrase cache (ENABLE_CACHING), so the call actors'
simulated callers get the same bytes back from the cache without running Piper during the
measurement (the caller hosts serve both sides' callers), and the Deepgram simulator learns
the same bytes, so it transcribes each line as its own text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from voice_ai.pipeline.scenario import Scenario

__all__ = ["PrerenderedVoice", "prerender"]


class PrerenderedVoice:
    """A caller voice (``voice_ai.pipeline.simulated.CallerVoice``) that only knows the lines
    it was given."""

    name = "prerendered"

    def __init__(self, audio: dict[str, bytes], sample_rate: int) -> None:
        self._audio = audio
        self.sample_rate = sample_rate

    @property
    def audio(self) -> dict[str, bytes]:
        return dict(self._audio)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        try:
            yield self._audio[text]
        except KeyError:
            raise KeyError(f"line not pre-rendered: {text!r}") from None


async def prerender(scenarios: Iterable[Scenario], pool_size: int,
                    namespace: str) -> PrerenderedVoice:
    """Render every distinct line through the Piper pool (each worker once, filling its cache),
    collected as a call actor's simulated caller collects it (the pool as a livekit TTS)."""
    from actors.pool_client import RayPoolPort
    from voice_ai.audio import pcm_of
    from voice_ai.providers.pool import ProviderPool
    from voice_ai.providers.pooled import PooledTTS

    piper = await PooledTTS.connect(ProviderPool(
        RayPoolPort.named("tts", "piper", pool_size, namespace)))
    lines = sorted({t.say for s in scenarios for t in s.turns})
    audio: dict[str, bytes] = {}
    for line in lines:
        for _ in range(pool_size):  # round robin: every worker caches every line
            async with piper.synthesize(line) as stream:
                audio[line] = pcm_of([event.frame async for event in stream])
    return PrerenderedVoice(audio, piper.sample_rate)
