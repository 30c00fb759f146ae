"""LiveKit credentials taken from ``Settings`` once, with one clear error when any is missing."""

from __future__ import annotations

from dataclasses import dataclass

from livekit import api

from voice_ai.config import Settings
from voice_ai.errors import ConfigError

__all__ = ["LiveKitCredentials", "livekit_credentials", "open_livekit_api"]


@dataclass(frozen=True, slots=True)
class LiveKitCredentials:
    url: str
    api_key: str
    api_secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"LiveKitCredentials(url={self.url!r}, api_key={self.api_key!r}, api_secret=***)"


def livekit_credentials(settings: Settings) -> LiveKitCredentials:
    """Return URL, key and secret, or raise ``ConfigError`` naming every missing variable."""
    secret = settings.livekit_api_secret.get_secret_value() if settings.livekit_api_secret else ""
    values = {
        "LIVEKIT_URL": settings.livekit_url or "",
        "LIVEKIT_API_KEY": settings.livekit_api_key or "",
        "LIVEKIT_API_SECRET": secret,
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigError(f"configuration error: {', '.join(missing)} must be set for LiveKit")
    return LiveKitCredentials(
        values["LIVEKIT_URL"], values["LIVEKIT_API_KEY"], values["LIVEKIT_API_SECRET"]
    )


def open_livekit_api(settings: Settings) -> api.LiveKitAPI:
    """A server API client for our LiveKit. The caller closes it (``await lk.aclose()``).

    Region failover is off: it only applies to LiveKit Cloud and would retry non-idempotent
    requests such as ``CreateSIPParticipant`` against another region.
    """
    creds = livekit_credentials(settings)
    return api.LiveKitAPI(creds.url, creds.api_key, creds.api_secret, failover=False)
