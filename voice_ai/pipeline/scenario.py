"""Scenario files: what a simulated caller says, when, and whether it interrupts the agent.

    name: book_appointment
    turns:
      - say: "Hi, I would like to book an appointment for Tuesday morning."
        pause_before_s: 0.6        # silence after the agent finished, before speaking
      - say: "Actually, make it Wednesday."
        barge_in_after_s: 0.8      # speak this long after the agent STARTS its reply
    reply_timeout_s: 15            # give up waiting for an agent reply after this long
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voice_ai.errors import ScenarioError

__all__ = ["CallerLine", "Scenario", "load_scenario"]


class CallerLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    say: str = Field(min_length=1, max_length=500)
    pause_before_s: float = Field(0.5, ge=0.0, le=30.0)
    barge_in_after_s: float | None = Field(None, ge=0.0, le=30.0)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    turns: tuple[CallerLine, ...] = Field(min_length=1, max_length=50)
    reply_timeout_s: float = Field(15.0, gt=0.0, le=120.0)
    wait_for_greeting: bool = True


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario; any problem becomes one ``ScenarioError`` line."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"scenario file {path} cannot be read: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ScenarioError(f"scenario file {path} is not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"scenario file {path} must be a mapping with 'name' and 'turns'")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ScenarioError(f"scenario file {path}: {field}: {first['msg']}{more}") from None
