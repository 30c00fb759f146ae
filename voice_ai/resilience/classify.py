"""Which provider failures are transient (count in breakers) and which need a person.

    transient  timeouts (asyncio / livekit APITimeoutError), connection errors (OSError,
               aiohttp ClientConnectionError, livekit APIConnectionError), HTTP 5xx, 429, 408
    permanent  HTTP 400, 401, 403, 404, 422 and every other 4xx; any exception we do not
               recognise (a bug or a protocol surprise should reach a person, not trip breakers)

The decision looks only at the exception, never at which provider raised it, so every provider
and the breakers agree. ``to_provider_error`` converts at a pool worker's boundary (a livekit or
aiohttp error becomes a picklable ``ProviderError``); ``to_api_error`` converts back on the call
side, so ``AgentSession`` sees livekit's own ``APIError`` family.
"""

from __future__ import annotations

import aiohttp
from livekit.agents import APIConnectionError, APIError, APIStatusError, APITimeoutError

from voice_ai.errors import PermanentProviderError, ProviderError, TransientProviderError

__all__ = [
    "is_transient",
    "status_code_of",
    "to_api_error",
    "to_provider_error",
    "transient_status",
]

_TRANSIENT_4XX = frozenset({408, 429})


def transient_status(status_code: int) -> bool:
    """HTTP status: 5xx, 408 and 429 are transient; other 4xx are permanent.

    A status outside 400-599 (livekit uses -1 for "unknown", e.g. a WebSocket closed without a
    status) means the exchange broke off, which is transient.
    """
    if 400 <= status_code < 500:
        return status_code in _TRANSIENT_4XX
    return True


def status_code_of(exc: BaseException) -> int | None:
    if isinstance(exc, ProviderError):
        return exc.status_code
    if isinstance(exc, APIStatusError) and exc.status_code >= 0:
        return exc.status_code
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status
    return None


def is_transient(exc: BaseException) -> bool:
    """True when retrying later may succeed, so a circuit breaker should count it."""
    if isinstance(exc, ProviderError):
        return exc.retryable
    # APITimeoutError is a subclass of APIConnectionError; both are transient
    if isinstance(exc, APITimeoutError | APIConnectionError):
        return True
    if isinstance(exc, APIStatusError):
        return transient_status(exc.status_code)
    if isinstance(exc, aiohttp.ClientResponseError):
        return transient_status(exc.status)
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return transient_status(exc.status)
    if isinstance(
        exc,
        TimeoutError | ConnectionError | OSError | aiohttp.ClientError,  # asyncio.TimeoutError too
    ):
        return True
    return False


def to_provider_error(exc: BaseException, provider: str) -> ProviderError:
    """The project's error for ``exc``; raise it ``from exc`` at the engine boundary."""
    if isinstance(exc, ProviderError):
        return exc
    status = status_code_of(exc)
    message = f"{provider}: {type(exc).__name__}" + (f" (HTTP {status})" if status else "")
    detail = str(exc).strip()
    if detail:
        message += f": {detail[:200]}"
    cls = TransientProviderError if is_transient(exc) else PermanentProviderError
    return cls(message, provider=provider, status_code=status)


def to_api_error(exc: ProviderError) -> APIError:
    """livekit's error for a pool's ``ProviderError`` (raise it ``from exc``). Not retryable:
    the breakers and fallbacks above decide what happens next, not livekit's retry loop."""
    if isinstance(exc, PermanentProviderError) or not exc.retryable:
        return APIStatusError(str(exc), status_code=exc.status_code or 400, retryable=False)
    if exc.status_code is not None:
        return APIStatusError(str(exc), status_code=exc.status_code, retryable=False)
    return APIConnectionError(str(exc), retryable=False)
