"""Which provider pools the cluster runs: the local model of each stage (always: it serves the
embedded default and is every cloud provider's fallback), and the cloud provider's own pool
when its sessions live in pool actors (CLOUD_PLACEMENT=pool)."""

from __future__ import annotations

from dataclasses import dataclass

from actors.names import worker_name
from voice_ai.config import Settings
from voice_ai.providers.factory import LOCAL_PROVIDER, is_local

__all__ = ["LOCAL_PROVIDER", "PoolSpec", "needs_breakers", "pool_layout", "pool_size"]


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
        return not is_local(self.stage, self.provider)


def _configured(settings: Settings) -> dict[str, tuple[str, int]]:
    return {
        "stt": (settings.stt_provider, settings.stt_pool_size),
        "llm": (settings.llm_provider, settings.llm_pool_size),
        "tts": (settings.tts_provider, settings.tts_pool_size),
    }


def pool_layout(settings: Settings) -> dict[str, list[PoolSpec]]:
    """stage -> [cloud pool (placement "pool" only)] + [the local pool]."""
    layout: dict[str, list[PoolSpec]] = {}
    for stage, (provider, size) in _configured(settings).items():
        local = LOCAL_PROVIDER[stage]
        if provider == local:
            layout[stage] = [PoolSpec(stage, local, size)]
            continue
        pools = [PoolSpec(stage, provider, size)] if settings.cloud_placement == "pool" else []
        layout[stage] = [*pools, PoolSpec(stage, local, size, fallback=True)]
    return layout


def pool_size(settings: Settings, stage: str, provider: str) -> int:
    for pool in pool_layout(settings)[stage]:
        if pool.provider == provider:
            return pool.size
    raise ValueError(f"no {stage} pool of {provider} in this cluster's layout")


def needs_breakers(settings: Settings) -> bool:
    """A cloud provider is configured (wherever its sessions live)."""
    return any(not is_local(stage, provider)
               for stage, (provider, _) in _configured(settings).items())
