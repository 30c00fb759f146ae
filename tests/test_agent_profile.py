"""agent.yaml: the shipped clinic loads; each mistake is one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from voice_ai.agent.profile import ProfileError, load_profile

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parent.parent / "agent.yaml"


def _write(tmp_path: Path, change: dict[str, object], drop: tuple[str, ...] = ()) -> Path:
    raw = yaml.safe_load(SHIPPED.read_text())
    raw.update(change)
    for key in drop:
        raw.pop(key)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_shipped_clinic_loads() -> None:
    p = load_profile(SHIPPED)
    assert p.name == "Bright Dental"
    assert p.hours["sunday"].closed
    assert p.hours["friday"].close is not None and p.hours["friday"].close.hour == 16
    assert p.service("cleaning") is not None and p.service("cleaning").price == 65
    assert p.transfer_number_masked == "***000"


@pytest.mark.parametrize(("change", "drop", "expected"), [
    ({"hours": {"funday": "09:00-17:00"}}, (), "hours: unknown weekday 'funday'"),
    ({"hours": {**dict.fromkeys(("monday", "tuesday", "wednesday", "thursday", "saturday",
                                 "sunday"), "09:00-17:00"), "friday": "9am-5pm"}},
     (), "hours: friday: '9am-5pm' is not a time span HH:MM-HH:MM"),
    ({}, ("transfer_number",), "transfer_number is missing"),
    ({"transfer_number": "call Bob"}, (), "transfer_number: must be a phone number"),
    ({"timezone": "Mars/Olympus"}, (), "timezone: unknown time zone 'Mars/Olympus'"),
    ({"booking": {"lunch_break": "13:00-12:00"}}, (), "booking.lunch_break: '13:00-12:00' ends"),
    ({"colour": "blue"}, (), "colour is not a known field"),
])
def test_each_mistake_is_one_line_naming_the_field(
    tmp_path: Path, change: dict[str, object], drop: tuple[str, ...], expected: str
) -> None:
    path = _write(tmp_path, change, drop)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}: ")
    assert expected in err.value.problems[0]
    assert "+44" not in str(err.value)  # the transfer number never appears in errors


def test_two_mistakes_two_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, {"timezone": "Nowhere/Here"}, ("transfer_number",))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert len(err.value.problems) == 2
    assert str(err.value).count("\n") == 1


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="agent profile not found"):
        load_profile(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(bad)
