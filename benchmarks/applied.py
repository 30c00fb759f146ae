"""The provider simulators, run on a background thread, remembering the latency they applied.

Each caller utterance gets a unique tag (``zq17``): the Deepgram simulator transcribes it as
``caller turn zq17``, the OpenAI simulator answers ``Sure, I can help you with that, zq17.`` and
the Cartesia simulator sees the tag in the text it speaks. A turn's ``user_text`` carries the
tag, so every turn is matched to the delays the three simulators really slept for it:

- ``stt_s``: the longest first-result delay of the Deepgram session that carried the tag (the
  engine returns when the session closes, after every result was sent);
- ``llm_first_s`` / ``llm_total_s``: the OpenAI first-token delay, and that plus every
  inter-token delay (the reply is one sentence, so TTS starts only when the stream ends);
- ``tts_s``: the Cartesia first-audio delay of the request that spoke the tagged sentence.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import re
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from voice_ai.simulators.suite import ProviderSimulators

__all__ = ["TAG_RE", "AppliedLatency", "InstrumentedSimulators", "tag_of"]

TAG_RE = re.compile(r"\bzq\d+\b")
T = TypeVar("T")


def tag_of(text: str) -> str | None:
    found = TAG_RE.findall(text or "")
    return found[-1] if found else None


@dataclass
class _Request:
    started: float
    mono: float = 0.0  # time.monotonic(): comparable with the breaker's transition times
    faulted: bool = False
    tag: str | None = None
    first: list[float] = field(default_factory=list)
    chunks: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class AppliedLatency:
    stt_s: float | None
    llm_first_s: float | None
    llm_total_s: float | None
    tts_s: float | None

    @property
    def complete(self) -> bool:
        return None not in (self.stt_s, self.llm_total_s, self.tts_s)


_current: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("sim_req", default=None)


class InstrumentedSimulators:
    """``ProviderSimulators`` on their own event loop thread, with per-tag applied latency."""

    def __init__(self, profile: str, *, seed: int = 0) -> None:
        self.profile = profile
        self.sims = ProviderSimulators(profile, seed=seed)
        self._counter = itertools.count(1)
        self._requests: dict[str, list[_Request]] = {"deepgram": [], "openai": [], "cartesia": []}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="simulators",
                                        daemon=True)
        self._instrument()

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> InstrumentedSimulators:
        self._thread.start()
        self.call(self.sims.start())
        return self

    def stop(self) -> None:
        self.call(self.sims.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def set_fault(self, provider: str, fault: str) -> None:
        self.call(self.sims.set_fault(provider, fault))

    def settings_overrides(self) -> dict[str, Any]:
        return self.sims.settings_overrides()

    def request_counts(self) -> dict[str, dict[str, int]]:
        return self.sims.request_counts()

    # --- results ------------------------------------------------------------------------
    def faulted_at(self, provider: str) -> list[float]:
        """``time.monotonic()`` of each request the simulator answered with a fault."""
        return [r.mono for r in list(self._requests[provider]) if r.faulted]

    def applied(self) -> dict[str, AppliedLatency]:
        """Tag -> the latency the simulators applied for that caller turn."""
        stt: dict[str, float] = {}
        llm: dict[str, tuple[float, float]] = {}
        tts: dict[str, float] = {}
        for r in list(self._requests["deepgram"]):
            if r.tag and r.first:
                stt.setdefault(r.tag, max(r.first))
        for r in list(self._requests["openai"]):
            if r.tag and r.first:
                llm.setdefault(r.tag, (r.first[0], r.first[0] + sum(r.chunks)))
        for r in list(self._requests["cartesia"]):
            if r.tag and r.first:
                tts.setdefault(r.tag, r.first[0])
        tags = set(stt) | set(llm) | set(tts)
        return {t: AppliedLatency(stt.get(t), llm.get(t, (None, None))[0],
                                  llm.get(t, (None, None))[1], tts.get(t)) for t in tags}

    # --- wiring -------------------------------------------------------------------------
    def _instrument(self) -> None:
        for name, server in self.sims.servers.items():
            self._wrap_admit(name, server)
            self._wrap_delays(name, server)
        dg = self.sims.deepgram
        original_next = dg.next_transcript

        def next_transcript() -> str:
            original_next()  # keep the simulator's own queue semantics
            tag = f"zq{next(self._counter)}"
            req = _current.get()
            if req is not None:
                req.tag = tag
            return f"caller turn {tag}"

        dg.next_transcript = next_transcript  # type: ignore[method-assign]
        self.sims.openai.responder = _tagged_reply

    def _wrap_admit(self, name: str, server: Any) -> None:
        original = server.admit
        requests = self._requests[name]

        async def admit(request: Any, **kwargs: Any) -> Any:
            req = _Request(started=time.time(), mono=time.monotonic(),
                           faulted=server.fault.value != "none")
            _current.set(req)
            requests.append(req)
            return await original(request, **kwargs)

        server.admit = admit

    def _wrap_delays(self, name: str, server: Any) -> None:
        first_delay: Callable[[], float] = server.first_delay_s
        chunk_delay: Callable[[], float] = server.latency.chunk_delay_s

        def first_delay_s() -> float:
            delay = first_delay()
            req = _current.get()
            if req is None:
                return delay
            if name == "openai":
                req.tag = tag_of(_last_user_text(server.last_messages))
            elif name == "cartesia":
                # one WebSocket may carry several texts: one record per spoken text
                req = _Request(started=time.time(), tag=tag_of(server.last_transcript))
                self._requests["cartesia"].append(req)
            req.first.append(delay)
            return delay

        def chunk_delay_s() -> float:
            delay = chunk_delay()
            req = _current.get()
            if req is not None and name == "openai":
                req.chunks.append(delay)
            return delay

        server.first_delay_s = first_delay_s
        server.latency.chunk_delay_s = chunk_delay_s


def _tagged_reply(request: Any) -> str | None:
    """The OpenAI simulator's answer: one sentence carrying the turn's tag."""
    tag = tag_of(request.last_user_text)
    return f"Sure, I can help you with that, {tag}." if tag else None


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content", "")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content)
    return ""
