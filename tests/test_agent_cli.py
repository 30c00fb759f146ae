"""`voice-ai run` with a bad agent.yaml: exit 2, one line per problem, nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deployments.cli import app

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parent.parent / "agent.yaml"


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda raw: raw["hours"].update({"caturday": "09:00-12:00"}),
     "hours: unknown weekday 'caturday' (expected monday..sunday)"),
    (lambda raw: raw["hours"].update({"monday": "9-5"}),
     "hours: monday: '9-5' is not a time span HH:MM-HH:MM or 'closed'"),
    (lambda raw: raw.pop("transfer_number"), "transfer_number is missing"),
])
def test_bad_profile_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            edit: object, expected: str) -> None:
    raw = yaml.safe_load(SHIPPED.read_text())
    edit(raw)  # type: ignore[operator]
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("AGENT_PROFILE_PATH", str(path))
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    result = CliRunner().invoke(app, ["run", "--exit", "--calls", "1"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {path}: {expected}"]
