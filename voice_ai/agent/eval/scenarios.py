"""Eval scenarios: caller lines with what a right answer contains (scenarios/eval/*.yaml).

    name: eval_booking
    seed_appointments: [{day: friday, time: "11:00", service: check-up}]
    turns:
      - say: "Tuesday at 10 am."
        expect:
          fact: ["10 am"]                       # every phrase in the reply (case-insensitive)
          tool: book_appointment                # this tool ran in the turn ...
          args: {day: tuesday, time: "10:00"}   # ... with at least these arguments
          appointment: {day: tuesday, time: "10:00", service: check-up}  # row in the store
          transfer: false                       # the call was handed to a person
          no_tool: false                        # no tool at all (answered from the profile)

A scenario is also a plain simulated-caller ``Scenario`` (``to_scenario``), so the same file
drives the audio pipeline.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voice_ai.errors import ScenarioError
from voice_ai.pipeline.scenario import CallerLine, Scenario

__all__ = ["AppointmentExpect", "EvalLine", "EvalScenario", "Expect", "load_eval_scenarios"]


class AppointmentExpect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    day: str
    time: str
    service: str = ""
    status: str = "booked"


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fact: tuple[str, ...] = ()
    tool: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    no_tool: bool = False
    appointment: AppointmentExpect | None = None
    transfer: bool = False

    @property
    def kind(self) -> str:
        """How the turn is counted in the summary."""
        if self.transfer:
            return "transfer"
        if self.tool:
            return "tool"
        return "fact"


class EvalLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    say: str = Field(min_length=1, max_length=500)
    pause_before_s: float = Field(0.6, ge=0.0, le=30.0)
    expect: Expect


class SeedAppointment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    day: str
    time: str
    service: str = "check-up"


class EvalScenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    turns: tuple[EvalLine, ...] = Field(min_length=1, max_length=50)
    seed_appointments: tuple[SeedAppointment, ...] = ()
    reply_timeout_s: float = Field(20.0, gt=0.0, le=120.0)
    wait_for_greeting: bool = True

    def to_scenario(self) -> Scenario:
        return Scenario(name=self.name, description=self.description,
                        turns=tuple(CallerLine(say=t.say, pause_before_s=t.pause_before_s,
                                               barge_in_after_s=None)
                                    for t in self.turns),
                        reply_timeout_s=self.reply_timeout_s,
                        wait_for_greeting=self.wait_for_greeting)


def load_eval_scenarios(folder: Path) -> list[EvalScenario]:
    """Every ``*.yaml`` in ``folder``, sorted by file name; one ``ScenarioError`` line if not."""
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ScenarioError(f"no eval scenarios in {folder}/")
    out = []
    for path in files:
        try:
            out.append(EvalScenario.model_validate(yaml.safe_load(path.read_text())))
        except (yaml.YAMLError, ValidationError) as e:
            first = str(e).splitlines()[0:3]
            raise ScenarioError(f"eval scenario {path}: {' '.join(first)}") from None
    return out
