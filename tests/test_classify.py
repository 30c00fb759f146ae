"""Which failures count in breakers (transient) and which need a person (permanent)."""

from __future__ import annotations

import aiohttp
import pytest
from livekit.agents import APIConnectionError, APIStatusError, APITimeoutError

from voice_ai.errors import PermanentProviderError, TransientProviderError
from voice_ai.resilience.classify import is_transient, to_provider_error

pytestmark = pytest.mark.unit


def _response_error(status: int) -> aiohttp.ClientResponseError:
    return aiohttp.ClientResponseError(request_info=None, history=(), status=status)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "exc",
    [
        APITimeoutError(),
        APIConnectionError(),
        APIStatusError("server error", status_code=500),
        APIStatusError("bad gateway", status_code=502),
        APIStatusError("rate limited", status_code=429),
        APIStatusError("closed unexpectedly", status_code=-1),
        TimeoutError(),
        ConnectionRefusedError(),
        aiohttp.ClientConnectionError(),
        aiohttp.ServerDisconnectedError(),
        _response_error(503),
        TransientProviderError("x", provider="deepgram"),
    ],
)
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        APIStatusError("unauthorized", status_code=401),
        APIStatusError("forbidden", status_code=403),
        APIStatusError("bad request", status_code=400),
        APIStatusError("unprocessable", status_code=422),
        _response_error(401),
        ValueError("a bug"),
        PermanentProviderError("x", provider="openai"),
    ],
)
def test_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_livekit_retryable_flag_does_not_decide() -> None:
    # livekit marks a stream cut after the first token "not retryable"; the provider is still sick
    assert is_transient(APIConnectionError("dropped", retryable=False))


def test_conversion_keeps_status_and_provider() -> None:
    err = to_provider_error(APIStatusError("invalid api key", status_code=401), "cartesia")
    assert isinstance(err, PermanentProviderError)
    assert (err.provider, err.status_code, err.retryable) == ("cartesia", 401, False)
    assert "HTTP 401" in str(err) and "invalid api key" in str(err)
    timeout = to_provider_error(TimeoutError(), "openai")
    assert isinstance(timeout, TransientProviderError) and timeout.status_code is None


def test_provider_errors_survive_pickling_across_processes() -> None:
    import pickle

    from voice_ai.errors import PermanentProviderError, TransientProviderError

    for error in (TransientProviderError("HTTP 500", provider="cartesia", status_code=500),
                  PermanentProviderError("HTTP 401", provider="deepgram", status_code=401)):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (str(copy), copy.provider, copy.status_code, copy.retryable) == (
            str(error), error.provider, error.status_code, error.retryable)
