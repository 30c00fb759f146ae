"""Scoring an eval turn, and the summary table and JSON.

A turn is correct when every expectation written for it holds: each fact phrase is in the
agent's reply, the expected tool ran in that turn with (at least) the expected arguments, no
tool ran where none should, the appointment row is in the book at the end of the call, and
the call was handed over where a transfer was asked for.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table

from voice_ai.agent.eval.scenarios import Expect
from voice_ai.agent.when import parse_time, resolve_day
from voice_ai.store.appointments import Appointment

__all__ = ["EvalReport", "TurnObservation", "TurnScore", "score_turn"]


@dataclass
class TurnObservation:
    """What happened in one caller turn."""

    heard: str = ""  # what speech-to-text made of the line ("" in text mode: the line itself)
    reply: str = ""
    tools: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    e2e_s: float | None = None  # end of caller speech -> first agent audio (audio mode)
    llm_s: float | None = None  # LLM time in the turn (all steps)


@dataclass
class TurnScore:
    scenario: str
    index: int
    say: str
    kind: str
    ok: bool
    misses: list[str]
    observed: TurnObservation


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip()


def _same_arg(key: str, want: str, got: str, today: date) -> bool:
    if _norm(want) == _norm(got):
        return True
    try:
        if key in ("day", "new_day"):
            return resolve_day(want, today) == resolve_day(got, today)
        if key in ("time", "new_time"):
            return parse_time(want) == parse_time(got)
    except ValueError:
        return False
    return False


def score_turn(expect: Expect, seen: TurnObservation, *, book: list[Appointment],
               transferred: bool, today: date) -> list[str]:
    """What is wrong with the turn (empty: correct)."""
    misses = []
    reply = _norm(seen.reply)
    for phrase in expect.fact:
        if _norm(phrase) not in reply:
            misses.append(f"reply lacks {phrase!r}")
    if not seen.reply.strip():
        misses.append("no reply")
    names = [name for name, _ in seen.tools]
    if expect.no_tool and names:
        misses.append(f"no tool expected, ran {names}")
    if expect.tool is not None:
        runs = [args for name, args in seen.tools if name == expect.tool]
        if not runs:
            misses.append(f"{expect.tool} did not run (ran {names or 'none'})")
        elif not any(all(_same_arg(k, v, args.get(k, ""), today) for k, v in expect.args.items())
                     for args in runs):
            misses.append(f"{expect.tool} arguments {runs[-1]} != {expect.args}")
    if expect.appointment is not None:
        a = expect.appointment
        day, start = resolve_day(a.day, today), parse_time(a.time)
        rows = [r for r in book if r.day == day and r.start == start
                and r.status.value == a.status and (not a.service or r.service == a.service)]
        if not rows:
            misses.append(f"no {a.status} appointment {day} {start:%H:%M} {a.service}".strip())
    if expect.transfer and not transferred:
        misses.append("the call was not transferred")
    return misses


@dataclass
class EvalReport:
    mode: str
    llm: str
    turns: list[TurnScore]
    setup: dict[str, Any] = field(default_factory=dict)

    def share(self, kind: str | None = None) -> float | None:
        pool = [t for t in self.turns if kind is None or t.kind == kind]
        return sum(t.ok for t in pool) / len(pool) if pool else None

    def e2e(self) -> list[float]:
        return sorted(t.observed.e2e_s for t in self.turns if t.observed.e2e_s is not None)

    def to_dict(self) -> dict[str, Any]:
        from voice_ai.store.stats import LatencyStats

        e2e = LatencyStats.of(self.e2e())
        llm = LatencyStats.of(sorted(t.observed.llm_s for t in self.turns
                                     if t.observed.llm_s is not None))
        return {
            "mode": self.mode, "llm": self.llm, "setup": self.setup,
            "turns": len(self.turns), "correct": sum(t.ok for t in self.turns),
            "correct_share": self.share(),
            "by_kind": {k: self.share(k) for k in ("fact", "tool", "transfer")},
            "e2e_s": e2e.to_dict() if e2e else None,
            "llm_s": llm.to_dict() if llm else None,
            "details": [asdict(t) for t in self.turns],
        }

    def print(self, console: Console) -> None:
        table = Table(title=f"Agent eval ({self.mode}, LLM: {self.llm})")
        for col in ("scenario", "#", "kind", "caller said (STT heard)", "agent", "tools", "e2e s",
                    "ok"):
            table.add_column(col, overflow="fold")
        for t in self.turns:
            o = t.observed
            said = t.say if not o.heard or _norm(o.heard) == _norm(t.say) else (
                f"{t.say} [{o.heard}]")
            tools = "; ".join(f"{n}({', '.join(f'{k}={v}' for k, v in a.items() if v)})"
                              for n, a in o.tools)
            table.add_row(t.scenario, str(t.index + 1), t.kind, said, o.reply, tools,
                          "-" if o.e2e_s is None else f"{o.e2e_s:.2f}",
                          "yes" if t.ok else "NO: " + "; ".join(t.misses))
        console.print(table)
        d = self.to_dict()
        kinds = ", ".join(f"{k} {v * 100:.0f} %" for k, v in d["by_kind"].items()
                          if v is not None)
        line = (f"correct: {d['correct']}/{d['turns']} turns ({d['correct_share'] * 100:.1f} %)"
                f"; by kind: {kinds}")
        if d["e2e_s"]:
            line += (f"; first agent audio p50 {d['e2e_s']['p50']:.2f} s, "
                     f"p95 {d['e2e_s']['p95']:.2f} s")
        console.print(line)
