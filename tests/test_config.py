"""Settings: defaults, every knob validated, one clear line per mistake."""

from __future__ import annotations

import pytest

from voice_ai.config import Settings, endpointing_for, load_settings
from voice_ai.errors import ConfigError

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("MAX_CONCURRENT_CALLS", "STT_PROVIDER", "OPTIMIZATION_LEVEL",
                 "CIRCUIT_BREAKER_THRESHOLD", "DEEPGRAM_API_KEY", "AUDIO_BUFFER_SIZE"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_embedded_local_setup() -> None:
    s = load_settings()
    assert s.max_concurrent_calls == 100
    assert (s.stt_provider, s.llm_provider, s.tts_provider) == ("whisper", "local", "piper")
    assert s.http_port == 8000


def test_runbook_knobs_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_CALLS", "150")
    monkeypatch.setenv("OPTIMIZATION_LEVEL", "aggressive")
    monkeypatch.setenv("AUDIO_BUFFER_SIZE", "1024")
    monkeypatch.setenv("CIRCUIT_BREAKER_THRESHOLD", "0.1")
    monkeypatch.setenv("ENABLE_CACHING", "false")
    s = load_settings()
    assert s.max_concurrent_calls == 150
    assert s.audio_buffer_size == 1024
    assert s.circuit_breaker_threshold == 0.1
    assert s.enable_caching is False
    assert s.endpointing == endpointing_for("aggressive") == (0.3, 0.2)


def test_dotenv_file_is_read(tmp_path) -> None:
    (tmp_path / ".env").write_text("MAX_CONCURRENT_CALLS=7\n")
    assert load_settings().max_concurrent_calls == 7


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MAX_CONCURRENT_CALLS", "abc", "MAX_CONCURRENT_CALLS='abc' is invalid"),
        ("MAX_CONCURRENT_CALLS", "0", "greater than or equal to 1"),
        ("STT_PROVIDER", "watson", "'whisper' or 'deepgram'"),
        ("OPTIMIZATION_LEVEL", "ludicrous", "'conservative', 'balanced' or 'aggressive'"),
        ("CIRCUIT_BREAKER_THRESHOLD", "1.5", "less than or equal to 1"),
    ],
)
def test_invalid_value_names_variable_and_what_it_accepts(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as e:
        load_settings()
    message = str(e.value)
    assert "\n" not in message
    assert name in message
    assert expected in message


def test_cloud_provider_without_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_PROVIDER", "deepgram")
    with pytest.raises(ConfigError, match="STT_PROVIDER=deepgram needs DEEPGRAM_API_KEY"):
        load_settings()


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(Exception, match="frozen"):
        s.max_concurrent_calls = 5  # type: ignore[misc]
