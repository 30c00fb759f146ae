"""``make eval``: speak the eval scenarios through the call pipeline and score every turn.

    python -m voice_ai.agent.eval [--text] [--scenarios DIR] [--json PATH] [--today DATE]

Audio (default): one call per scenario, simulated caller -> whisper -> the embedded default
LLM -> Piper, in this process. ``--text``: the lines typed into the agent (seconds; no STT or
TTS). Prints the table, writes the JSON (``data/eval/agent_eval.json``); exit 1 when under the
bar (90 % of turns correct, every transfer request transferred).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from datetime import date
from pathlib import Path

from rich.console import Console

from voice_ai.agent.engine import ReceptionistLLM
from voice_ai.agent.eval.scenarios import load_eval_scenarios
from voice_ai.agent.eval.score import EvalReport
from voice_ai.agent.eval.text import run_text_eval
from voice_ai.agent.profile import ProfileError, load_profile
from voice_ai.config import load_settings
from voice_ai.errors import ConfigError, ScenarioError

EVAL_DAY = date(2026, 11, 30)  # a Monday: the scenarios' weekdays are the days after it
BAR = 0.9


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m voice_ai.agent.eval",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--text", action="store_true", help="type the lines (no audio)")
    parser.add_argument("--scenarios", type=Path, default=Path("scenarios/eval"))
    parser.add_argument("--json", type=Path, default=Path("data/eval/agent_eval.json"))
    parser.add_argument("--today", type=date.fromisoformat, default=EVAL_DAY,
                        help="the agent's today (YYYY-MM-DD)")
    args = parser.parse_args()
    console = Console(width=max(160, Console().width))
    try:
        settings = load_settings()
        profile = load_profile(settings.agent_profile_path)
        scenarios = load_eval_scenarios(args.scenarios)
    except (ConfigError, ScenarioError) as e:
        lines = e.problems if isinstance(e, ProfileError) else [str(e)]
        for line in lines:
            print(f"error: {line}", file=sys.stderr)
        return 2
    report: EvalReport
    if args.text:
        report = asyncio.run(run_text_eval(profile, scenarios, lambda: ReceptionistLLM(profile),
                                           today=args.today, label="ReceptionistLLM (router)"))
    else:
        from voice_ai.agent.eval.audio import run_audio_eval

        db_dir = args.json.parent / "stores"
        shutil.rmtree(db_dir, ignore_errors=True)
        db_dir.mkdir(parents=True)
        report = asyncio.run(run_audio_eval(settings, profile, scenarios, today=args.today,
                                            db_dir=db_dir))
    report.setup.update({"scenarios": str(args.scenarios), "today": args.today.isoformat()})
    report.print(console)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    console.print(f"wrote {args.json}")
    share, transfers = report.share() or 0.0, report.share("transfer")
    return 0 if share >= BAR and transfers in (None, 1.0) else 1


if __name__ == "__main__":
    sys.exit(main())
