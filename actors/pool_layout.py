"""Which provider pools the cluster runs: the configured provider per stage, plus the local
model as its fallback when the configured one is a cloud provider."""

from __future__ import annotations

from dataclasses import dataclass

from actors.names import worker_name
from voice_ai.config import Settings

LOCAL_PROVIDER = {"stt": "whisper", "llm": "local", "tts": "piper"}


@dataclass(frozen=True)
class PoolSpec:
    stage: str
    provider: str
    size: int
    fallback: bool = False

    @property
    def label(self) -> str:
        return f"{self.stage}_{self.provider}"

    @property
    def names(self) -> list[str]:
        return [worker_name(self.stage, self.provider, i) for i in range(self.size)]

    @property
    def is_cloud(self) -> bool:
        return self.provider != LOCAL_PROVIDER[self.stage]


def pool_layout(settings: Settings) -> dict[str, list[PoolSpec]]:
    """stage -> [primary pool, fallback pool if the primary is a cloud provider]."""
    configured = {
        "stt": (settings.stt_provider, settings.stt_pool_size),
        "llm": (settings.llm_provider, settings.llm_pool_size),
        "tts": (settings.tts_provider, settings.tts_pool_size),
    }
    layout: dict[str, list[PoolSpec]] = {}
    for stage, (provider, size) in configured.items():
        pools = [PoolSpec(stage, provider, size)]
        if provider != LOCAL_PROVIDER[stage]:
            pools.append(PoolSpec(stage, LOCAL_PROVIDER[stage], size, fallback=True))
        layout[stage] = pools
    return layout


def needs_breakers(settings: Settings) -> bool:
    return any(p.is_cloud for pools in pool_layout(settings).values() for p in pools)
