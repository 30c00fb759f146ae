"""``ProviderSimulators``: the three simulators started together on loopback."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from voice_ai.simulators.cartesia import CartesiaSimulator
from voice_ai.simulators.deepgram import DeepgramSimulator
from voice_ai.simulators.faults import Fault
from voice_ai.simulators.openai import OpenAISimulator
from voice_ai.simulators.profile import SimulatorProfile, named_profile
from voice_ai.simulators.server import SimulatorServer

__all__ = ["ProviderSimulators"]


class ProviderSimulators:
    """Deepgram, OpenAI and Cartesia simulators on ``host``; free ports unless ``port_base``
    is given (then ``port_base``, ``+1``, ``+2``). Use ``async with`` or ``start``/``stop``."""

    def __init__(
        self,
        profile: SimulatorProfile | str = "zero",
        *,
        host: str = "127.0.0.1",
        port_base: int = 0,
        seed: int = 0,
    ) -> None:
        p = named_profile(profile, seed) if isinstance(profile, str) else profile
        port = (lambda i: port_base + i) if port_base else (lambda i: 0)
        self.deepgram = DeepgramSimulator(p.deepgram, host=host, port=port(0))
        self.openai = OpenAISimulator(p.openai, host=host, port=port(1))
        self.cartesia = CartesiaSimulator(p.cartesia, host=host, port=port(2))

    @property
    def servers(self) -> dict[str, SimulatorServer]:
        return {"deepgram": self.deepgram, "openai": self.openai, "cartesia": self.cartesia}

    def base_urls(self) -> dict[str, str]:
        """The values for ``DEEPGRAM_BASE_URL``, ``OPENAI_BASE_URL``, ``CARTESIA_BASE_URL``."""
        return {
            "deepgram_base_url": self.deepgram.listen_url,
            "openai_base_url": self.openai.api_url,
            "cartesia_base_url": self.cartesia.base_url,
        }

    def settings_overrides(self) -> dict[str, Any]:
        """Settings fields that point all three cloud providers at the simulators."""
        return {
            **self.base_urls(),
            "stt_provider": "deepgram", "llm_provider": "openai", "tts_provider": "cartesia",
            "deepgram_api_key": "test-key", "openai_api_key": "test-key",
            "cartesia_api_key": "test-key",
        }

    def request_counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {"requests": s.requests, "faulted": s.faulted}
            for name, s in self.servers.items()
        }

    async def set_fault(self, provider: str, fault: Fault | str) -> None:
        await self.servers[provider].set_fault(fault)

    async def start(self) -> None:
        for server in self.servers.values():
            await server.start()

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.stop()

    async def __aenter__(self) -> ProviderSimulators:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
