"""Scenario files: the shipped ones load; broken ones give one line naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_ai.errors import ScenarioError
from voice_ai.pipeline.scenario import load_scenario

pytestmark = pytest.mark.unit

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_load(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.turns and all(t.say for t in scenario.turns)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\n", "turns: Field required"),
        ("name: x\nturns: []\n", "turns: Tuple should have at least 1 item"),
        ("name: x\nturns:\n  - says: hi\n", "turns.0.say: Field required"),
        ("name: x\nturns:\n  - say: hi\n    pause_before_s: -1\n", "turns.0.pause_before_s"),
        ("name: [unclosed\n", "is not valid YAML (line"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_invalid_scenario_gives_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert expected in str(e.value)
    assert str(path) in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.yaml")
