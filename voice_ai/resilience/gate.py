"""The breaker board port: what a call asks before it sends to a cloud provider.

    admission = await board.acquire("deepgram", lease)   # breaker + per-account quota
    if admission.allowed:
        ... one request, or one turn of a live stream ...
        await board.report("deepgram", Outcome.success())      # or failure(...), or None
    await board.release("deepgram", lease)                 # the quota slot, at stream end

``acquire`` is authoritative: the breaker reserves the request's slot (``CircuitBreaker``), so
however many calls race, no more requests reach a failing provider than it takes to open the
breaker. A request reports at its first sign of life (the first transcript of a turn, the
first token, the first audio), which frees its slot at once: a burst of healthy calls then
ramps up in a few hundred milliseconds instead of waiting for whole replies. What the same
request says later (it failed mid-reply) is reported with ``Outcome.later()``: counted, no slot
freed. ``report(None)`` ends an admitted request without an outcome (cancelled before it said
anything about the provider). The cluster has one ``BoardService`` (in the named breaker
registry actor, ``actors/breaker_registry.py``); tests use it directly with an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from voice_ai.config import Settings
from voice_ai.resilience.board import BreakerBoard, breaker_config_from_settings
from voice_ai.resilience.breaker import Admission, BreakerSnapshot, Transition
from voice_ai.resilience.classify import is_transient, status_code_of
from voice_ai.resilience.quota import QuotaBoard

__all__ = ["THROTTLE_WAIT_S", "BoardService", "BoundedBoard", "Outcome", "ProviderBoard",
           "board_from_settings", "report_soon"]

THROTTLE_WAIT_S = 2.0

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    error: str | None = None
    transient: bool = True
    holds_slot: bool = True
    """The request reporting holds a breaker slot, freed by this outcome; False for a request
    whose slot an earlier outcome freed (``later``)."""

    def later(self) -> Outcome:
        """This outcome from a request that already reported (its slot is free)."""
        return replace(self, holds_slot=False)

    @classmethod
    def success(cls) -> Outcome:
        return cls(ok=True)

    @classmethod
    def failure(cls, exc: BaseException) -> Outcome:
        """Classified by ``is_transient``: only transient failures count in the breaker. The
        error names the HTTP status when there is one (livekit's ``APIStatusError`` text does
        not): an operator reading /health/detailed must tell a 401 from a 503."""
        status = status_code_of(exc)
        name = type(exc).__name__ if status is None else f"{type(exc).__name__} HTTP {status}"
        return cls(ok=False, error=f"{name}: {exc}"[:300], transient=is_transient(exc))


_BACKGROUND: set[asyncio.Task[None]] = set()


def report_soon(board: ProviderBoard, provider: str, outcome: Outcome) -> None:
    """``board.report`` without waiting for it: a request's first sign of life frees its slot
    while the reply goes on (the board is an actor call away)."""
    task = asyncio.get_running_loop().create_task(board.report(provider, outcome))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


class ProviderBoard(Protocol):
    async def acquire(self, provider: str, lease: str) -> Admission: ...

    async def report(self, provider: str, outcome: Outcome | None) -> None: ...

    async def release(self, provider: str, lease: str) -> None: ...


class BoardService:
    """The breakers and quotas of every provider, for every call of the cluster.

    A throttled acquire (enough requests in flight to decide whether the provider is down)
    waits up to ``throttle_wait_s`` for outcomes before it gives up (the caller then uses the
    fallback); outcomes and releases wake it.
    """

    def __init__(self, breakers: BreakerBoard, quotas: QuotaBoard, *,
                 throttle_wait_s: float = THROTTLE_WAIT_S) -> None:
        self.breakers = breakers
        self.quotas = quotas
        self._throttle_wait_s = throttle_wait_s
        self._changed = asyncio.Event()

    async def acquire(self, provider: str, lease: str) -> Admission:
        # a real wait for other requests' outcomes: the event loop's clock, not the
        # breakers' (injected) one
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._throttle_wait_s
        while True:
            admission = self.breakers.acquire(provider)
            remaining = deadline - loop.time()
            if admission is not Admission.THROTTLED or remaining <= 0:
                break
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass
        if admission.allowed and not self.quotas.take(provider, lease):
            self.breakers.release(provider)
            return Admission.QUOTA
        return admission

    async def report(self, provider: str, outcome: Outcome | None) -> None:
        if outcome is None:
            self.breakers.release(provider)
        else:
            self.breakers.report(provider, ok=outcome.ok, error=outcome.error,
                                 transient=outcome.transient, release=outcome.holds_slot)
        self._wake()

    async def release(self, provider: str, lease: str) -> None:
        self.quotas.give_back(provider, lease)
        self._wake()

    def snapshots(self) -> dict[str, BreakerSnapshot]:
        return self.breakers.snapshots()

    def transitions_since(self, seq: int) -> tuple[int, list[Transition]]:
        return self.breakers.transitions_since(seq)

    def _wake(self) -> None:
        self._changed.set()  # wake throttled acquirers
        self._changed = asyncio.Event()


class BoundedBoard:
    """A ``ProviderBoard`` that never holds up a turn: the cluster's board (an actor that may be
    restarting or gone) answers within a deadline, or the call goes on without it.

    ``acquire`` that gets no answer lets the request go to the provider *unchecked*, and for
    ``retry_after_s`` after such a failure the board is not asked at all (a restart takes
    seconds; a greeting must not wait it out request by request). Not knowing the breakers is
    not evidence that a provider is down: sending every call to the local fallbacks instead
    (as this did at first) loaded 2 cores with whisper and the local LLM whenever the registry
    restarted or answered slowly under load, and calls went silent. A provider that is down
    meanwhile fails each request, which then finishes on the fallback as any failure does. An
    unchecked request's outcome still reaches the board, as a later outcome (it holds no slot).
    ``report`` and ``release`` are best effort: an outcome lost while the board restarts costs
    the breaker one sample; a quota slot is freed when the board's lease table restarts empty.
    """

    def __init__(self, board: ProviderBoard, *, acquire_timeout_s: float = THROTTLE_WAIT_S + 1.0,
                 update_timeout_s: float = 1.0, retry_after_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._board = board
        self._acquire_timeout_s = acquire_timeout_s
        self._update_timeout_s = update_timeout_s
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._unreachable_until = float("-inf")
        self._unchecked: dict[str, int] = {}  # requests let through unchecked, not reported

    async def acquire(self, provider: str, lease: str) -> Admission:
        if self._clock() < self._unreachable_until:
            return self._let_through(provider)
        try:
            return await self._ask(self._board.acquire(provider, lease), self._acquire_timeout_s)
        except Exception as e:  # noqa: BLE001 - whatever kept the board from answering
            self._unreachable_until = self._clock() + self._retry_after_s
            logger.warning("breaker board did not answer; requests go to the provider unchecked",
                           extra={"provider": provider, "error": type(e).__name__,
                                  "for_s": self._retry_after_s})
            return self._let_through(provider)

    def _let_through(self, provider: str) -> Admission:
        self._unchecked[provider] = self._unchecked.get(provider, 0) + 1
        return Admission.ADMITTED

    async def report(self, provider: str, outcome: Outcome | None) -> None:
        if self._unchecked.get(provider, 0) and (outcome is None or outcome.holds_slot):
            self._unchecked[provider] -= 1  # an unchecked request's: it holds no slot there
            if outcome is None:
                return
            outcome = outcome.later()
        await self._best_effort(self._board.report(provider, outcome), "report", provider)

    async def release(self, provider: str, lease: str) -> None:
        await self._best_effort(self._board.release(provider, lease), "release", provider)

    async def _best_effort(self, update: Awaitable[None], what: str, provider: str) -> None:
        try:
            await self._ask(update, self._update_timeout_s)
        except Exception as e:  # noqa: BLE001 - best effort, said once per failure
            logger.warning(f"breaker board did not take a {what}; the call goes on",
                           extra={"provider": provider, "error": type(e).__name__})

    @staticmethod
    async def _ask(awaitable: Awaitable[T], timeout_s: float) -> T:
        async with asyncio.timeout(timeout_s):
            return await awaitable


def board_from_settings(settings: Settings) -> BoardService:
    """The cluster's board: breakers from the CIRCUIT_BREAKER_* / BREAKER_* knobs, quotas from
    DEEPGRAM_CONCURRENCY, OPENAI_CONCURRENCY and CARTESIA_CONCURRENCY."""
    limits = {"deepgram": settings.deepgram_concurrency, "openai": settings.openai_concurrency,
              "cartesia": settings.cartesia_concurrency}
    # a lease outlives its call only when the call actor died without giving it back
    lease_s = settings.max_call_duration_s + 60.0
    return BoardService(BreakerBoard(breaker_config_from_settings(settings)),
                        QuotaBoard(limits, lease_s=lease_s))
