"""The provider simulators on a background thread of the benchmark driver.

Both sides of a run talk to these same three servers. ``set_profile`` switches the model of
time between phases (``realistic`` / ``zero``); ``learn`` tells the Deepgram simulator the
callers' exact audio, so each line is transcribed as its own text (split at its punctuation
pauses, docs/performance.md); the OpenAI simulator answers every turn with ``REPLY``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from benchmarks.stats import summary
from voice_ai.audio import resample_pcm
from voice_ai.simulators import ProviderSimulators, named_profile

__all__ = ["REPLY", "SimHost"]

T = TypeVar("T")
REPLY = "Sure, I can help you with that. Which day would suit you best?"
"""Every agent reply: a receptionist's two sentences; the first is 8 tokens (160 ms of
streaming at 20 ms a token), the whole reply 15."""
CALLER_RATE = 16_000  # what the simulated caller sends


class SimHost:
    """``ProviderSimulators`` on their own event loop thread."""

    def __init__(self, profile: str, *, seed: int = 0) -> None:
        self.profile = profile
        self.seed = seed
        self.sims = ProviderSimulators(profile, seed=seed)
        self.sims.openai.default_reply = REPLY
        self._faulted: dict[str, list[float]] = {name: [] for name in self.sims.servers}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="simulators",
                                        daemon=True)
        for name, server in self.sims.servers.items():
            self._watch_faults(name, server)

    def start(self) -> SimHost:
        self._thread.start()
        self.call(self.sims.start())
        return self

    def stop(self) -> None:
        self.call(self.sims.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def set_profile(self, name: str) -> None:
        """Switch every simulator's timing (between phases, not during one)."""
        profile = named_profile(name, self.seed)

        async def switch() -> None:
            self.sims.deepgram.latency = profile.deepgram
            self.sims.openai.latency = profile.openai
            self.sims.cartesia.latency = profile.cartesia

        self.call(switch())
        self.profile = name

    def learn(self, audio: Mapping[str, bytes], sample_rate: int) -> None:
        """The callers' lines (PCM at ``sample_rate``) as the callers will send them."""
        for text, pcm in audio.items():
            self.sims.deepgram.learn(text, resample_pcm(pcm, sample_rate, CALLER_RATE),
                                     CALLER_RATE)

    def lines_recognised(self) -> int:
        return self.sims.deepgram.lines_recognised

    def set_fault(self, provider: str, fault: str) -> None:
        self.call(self.sims.set_fault(provider, fault))

    def settings_overrides(self) -> dict[str, Any]:
        return self.sims.settings_overrides()

    def base_urls(self) -> dict[str, str]:
        return self.sims.base_urls()

    def lateness_marks(self) -> dict[str, int]:
        """Where each simulator's lateness record stands now (``lateness_since``)."""
        return {name: len(server.lateness_s) for name, server in self.sims.servers.items()}

    def lateness_since(self, marks: Mapping[str, int]) -> dict[str, dict[str, float | int]]:
        """Per simulator, ms by which its modelled delays (first token, first audio, final)
        were late since ``marks``: the driver's loop, which hosts them, was busy. Both sides
        meet the same model of time only while these stay near zero."""
        out = {}
        for name, server in self.sims.servers.items():
            late = [v * 1000 for v in server.lateness_s[marks.get(name, 0):]]
            out[name] = {k: round(v, 1) for k, v in summary(late).items()}
        return out

    def request_counts(self) -> dict[str, dict[str, int]]:
        return self.sims.request_counts()

    def faulted_at(self, provider: str) -> list[float]:
        """``time.monotonic()`` of each request the simulator answered with a fault."""
        return list(self._faulted[provider])

    def _watch_faults(self, name: str, server: Any) -> None:
        admit = server.admit
        seen = self._faulted[name]

        async def admit_and_note(request: Any, **kwargs: Any) -> Any:
            if server.fault.value != "none":
                seen.append(time.monotonic())
            return await admit(request, **kwargs)

        server.admit = admit_and_note
