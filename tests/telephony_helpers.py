"""Settings shared by the telephony tests: test-only keys, never real credentials."""

from __future__ import annotations

from typing import Any

from voice_ai.config import Settings

API_KEY = "devkey"
API_SECRET = "secret-for-tests-only-0123456789"
CALLS_TOKEN = "calls-token-for-tests-only"


def telephony_settings(url: str = "http://127.0.0.1:9", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "livekit_url": url,
        "livekit_api_key": API_KEY,
        "livekit_api_secret": API_SECRET,
        "calls_api_token": CALLS_TOKEN,
        "livekit_token_ttl_s": 300,
        "outbound_allowed_prefixes": "+1555",  # the tests' fictional numbers: +1 555 01xx
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]  # pydantic-settings kwarg
