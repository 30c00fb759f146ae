"""``voice-ai doctor``: check the environment and say what is wrong, one line per check."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from voice_ai.config import Settings, load_settings
from voice_ai.errors import ConfigError
from voice_ai.providers.local.models import (
    default_llm_model,
    default_piper_voice,
    default_whisper_model,
)

Check = tuple[str, Callable[[], str]]


def _settings() -> str:
    load_settings()
    return "settings valid"


def _module(name: str) -> Callable[[], str]:
    def check() -> str:
        if importlib.util.find_spec(name) is None:
            raise RuntimeError(f"python module {name} is not installed; run `make install`")
        return f"{name} importable"
    return check


def _model(locate: Callable[[], object]) -> Callable[[], str]:
    def check() -> str:
        return str(locate())
    return check


def _port(settings: Settings) -> Callable[[], str]:
    def check() -> str:
        from deployments.cli import port_in_use

        if port_in_use(settings.http_host, settings.http_port):
            raise RuntimeError(f"HTTP_PORT={settings.http_port} is in use")
        return f"port {settings.http_port} free"
    return check


def _shm() -> str:
    free_gb = shutil.disk_usage("/dev/shm").free / 1e9
    if free_gb < 1.0:
        raise RuntimeError(f"/dev/shm has only {free_gb:.1f} GB free; Ray needs more")
    return f"/dev/shm {free_gb:.1f} GB free"


def _ray_starts() -> str:
    code = ("import ray; ray.init(num_cpus=1, include_dashboard=False); "
            "print(ray.cluster_resources().get('CPU')); ray.shutdown()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"ray.init failed: {last}")
    return "local Ray starts and stops"


def run_checks(console: Console) -> bool:
    checks: list[Check] = [("settings", _settings)]
    try:
        settings = load_settings()
    except ConfigError:
        settings = None
    checks += [
        ("faster-whisper", _module("faster_whisper")),
        ("llama.cpp", _module("llama_cpp")),
        ("piper", _module("piper")),
        ("livekit-agents", _module("livekit.agents")),
        ("whisper model", _model(lambda: (settings and settings.whisper_model_path)
                                 or default_whisper_model())),
        ("piper voice", _model(lambda: (settings and settings.piper_voice_path)
                               or default_piper_voice())),
        ("llm weights", _model(lambda: (settings and settings.llm_model_path)
                               or default_llm_model())),
        ("shared memory", _shm),
    ]
    if settings is not None:
        checks.append(("http port", _port(settings)))
    checks.append(("ray", _ray_starts))
    table = Table(title="voice-ai doctor")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    ok = True
    for name, check in checks:
        try:
            table.add_row(name, "[green]ok[/]", check())
        except Exception as e:  # every failure is reported, none stops the others
            ok = False
            table.add_row(name, "[red]FAIL[/]", str(e))
    console.print(table)
    return ok
