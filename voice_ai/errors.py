"""The project's error tree.

    VoiceAIError
    ├── ConfigError          bad settings; the program stops before Ray starts (exit 2)
    ├── ScenarioError        a scenario file that cannot be used
    ├── ProviderError        a STT/LLM/TTS request failed
    │   ├── TransientProviderError   timeouts, connection errors, 5xx, 429: retry, count in breakers
    │   └── PermanentProviderError   401, 403, 400: a person must act; breakers ignore them
    └── CapacityError        the cluster is at MAX_CONCURRENT_CALLS
"""

from __future__ import annotations

__all__ = [
    "CapacityError",
    "ConfigError",
    "PermanentProviderError",
    "ProviderError",
    "ScenarioError",
    "TransientProviderError",
    "VoiceAIError",
]


class VoiceAIError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(VoiceAIError):
    """A setting is missing or invalid. The message names the variable and what it accepts."""


class ScenarioError(VoiceAIError):
    """A scenario file is missing, not YAML, or does not follow the scenario schema."""


class ProviderError(VoiceAIError):
    """A provider request failed. ``retryable`` says whether trying again may help."""

    retryable: bool = False

    def __init__(self, message: str, *, provider: str = "", status_code: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code

    def __reduce__(self) -> tuple[object, ...]:
        # keyword-only fields survive pickling (a pool worker's error crosses Ray to the call)
        return (type(self), (str(self),), {"provider": self.provider,
                                          "status_code": self.status_code})


class TransientProviderError(ProviderError):
    retryable = True


class PermanentProviderError(ProviderError):
    retryable = False


class CapacityError(VoiceAIError):
    """Admission refused: the cluster already carries MAX_CONCURRENT_CALLS calls."""
