"""docs/RUNBOOK.md cannot drift from the code: its commands exist, its knobs are settings, and
what needs machines is marked. (``make runbook-check`` runs the commands themselves against a
live system; this module is the fast part that runs in ``make test``.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployments.cli import app
from deployments.runbook_check import RUNBOOK, runbook_commands
from voice_ai.config import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
TEXT = RUNBOOK.read_text()
COMMANDS = runbook_commands(TEXT)
NOT_KNOBS = {"RAY_GRAFANA_HOST", "RAY_PROMETHEUS_HOST", "RAY_ADDRESS", "PATH", "CALL_REJECTED"}


def _voice_ai_words(command: str) -> list[str]:
    """``voice-ai pool restart tts --provider piper`` -> ``[pool, restart, tts]``."""
    first = command.split("&&")[0].split("|")[0]
    words = shlex.split(first)[1:]
    out = []
    for w in words:
        if w.startswith("-") or "/" in w or "." in w:
            break
        out.append(w)
    return out


def test_the_runbook_has_commands_for_every_procedure() -> None:
    for heading in ("## Daily operations", "## Scaling", "### The Serve app", "### A provider pool",
                    "## When a breaker opens", "## GPU fallback", "## Backups and restore",
                    "## Maintenance", "## Emergency procedures"):
        assert heading in TEXT
    assert len([c for c in COMMANDS if c.runnable]) >= 50


@pytest.mark.parametrize("command", sorted({c.text for c in COMMANDS
                                            if c.text.startswith("voice-ai ")}))
def test_every_voice_ai_command_exists(command: str) -> None:
    words = _voice_ai_words(command)
    result = CliRunner().invoke(app, [*words, "--help"])
    assert result.exit_code == 0, (command, result.output)


def test_only_machine_level_commands_are_left_to_a_real_cluster() -> None:
    skipped = [c.text for c in COMMANDS if not c.runnable]
    assert skipped
    for text in skipped:
        assert re.match(r"(make cluster-(up|down)|ray (up|down|exec|dashboard|attach))", text), text


def test_no_seed_only_tooling_is_left() -> None:
    runnable = " ".join(c.text for c in COMMANDS if c.runnable)
    for gone in ("docker", "scripts/", "logrotate", "nginx", "systemctl"):
        assert gone not in runnable


def test_knobs_named_in_the_runbook_are_settings() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})(?:=[^`]*)?`", TEXT))
    unknown = named - fields - NOT_KNOBS
    assert not unknown, f"not a setting: {sorted(unknown)}"


def test_files_the_runbook_names_exist() -> None:
    for path in ("cluster.yaml", "cluster.aws.yaml", "serve_config.yaml",
                 "grafana/alerts/voice_ai_rules.yml", "grafana/dashboards/voice_ai.json",
                 "docs/logging.md", "docs/operations.md", "docs/metrics.md",
                 "docs/resilience.md", "docs/telephony.md", "scenarios/book_appointment.yaml"):
        assert path in TEXT or path.startswith("scenarios/"), path
        assert (ROOT / path).exists(), path
