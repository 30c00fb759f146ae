"""``voice-ai sip provision|show`` through Typer's CliRunner against the loopback fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.fakes.livekit_server import FakeLiveKitServer
from tests.telephony_helpers import API_KEY, API_SECRET
from tests.test_telephony_provisioning import SPEC_YAML
from voice_ai.cli.sip_cmds import register

pytestmark = pytest.mark.integration


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test root so that ``sip`` stays a sub-command."""

    register(app)
    return app


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeLiveKitServer]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    with FakeLiveKitServer().threaded() as fake:
        monkeypatch.setenv("LIVEKIT_URL", fake.url)
        monkeypatch.setenv("LIVEKIT_API_KEY", API_KEY)
        monkeypatch.setenv("LIVEKIT_API_SECRET", API_SECRET)
        monkeypatch.setenv("SIP_TRUNK_PASSWORD", "trunk-password-for-tests")
        yield fake


def _spec(tmp_path: Path, text: str = SPEC_YAML) -> str:
    path = tmp_path / "novofon.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_provision_twice_changes_nothing_the_second_time(
    app: typer.Typer, server: FakeLiveKitServer, tmp_path: Path
) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["sip", "provision", _spec(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "trunk 'novofon-inbound': created" in first.output
    assert "dispatch rule 'novofon-calls': created" in first.output
    writes = list(server.writes)

    second = runner.invoke(app, ["sip", "provision", _spec(tmp_path)])
    assert second.exit_code == 0, second.output
    assert "unchanged" in second.output and "nothing to change" in second.output
    assert server.writes == writes


def test_show_lists_trunks_and_rules(
    app: typer.Typer, server: FakeLiveKitServer, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["sip", "provision", _spec(tmp_path)]).exit_code == 0
    shown = runner.invoke(app, ["sip", "show"])
    assert shown.exit_code == 0, shown.output
    for text in ("Inbound trunks", "novofon-inbound", "203.0.113.0/24", "agent-trunk / ***",
                 "Dispatch rules", "novofon-calls", "individual", "call-"):
        assert text in shown.output
    assert "trunk-password-for-tests" not in shown.output


def test_a_file_with_a_missing_field_changes_nothing(
    app: typer.Typer, server: FakeLiveKitServer, tmp_path: Path
) -> None:
    broken = SPEC_YAML.replace("  name: novofon-inbound\n", "")
    result = CliRunner().invoke(app, ["sip", "provision", _spec(tmp_path, broken)])
    assert result.exit_code == 1
    assert "trunk.name: Field required" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert server.requests == []


def test_missing_livekit_settings_exit_2(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["sip", "show"])
    assert result.exit_code == 2
    assert "LIVEKIT_URL" in result.output and "Traceback" not in result.output


def test_unreachable_livekit_is_one_line(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIVEKIT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LIVEKIT_API_KEY", API_KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", API_SECRET)
    result = CliRunner().invoke(app, ["sip", "show"])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot reach LiveKit")
    assert "Traceback" not in result.output
