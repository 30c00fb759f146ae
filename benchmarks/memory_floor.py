"""What a call actor's memory is made of: USS of Ray actors at each step of what a call actor
loads, several actors alive at once (so the pages of shared libraries count as shared, as on
a node running many calls).

    python -m benchmarks.memory_floor            # 3 actors per step
    python -m benchmarks.memory_floor --actors 4 --out floor.json

Steps: a bare Ray actor; + livekit-agents; + the four stock plugins and Silero's model loaded
(what any actor hosting an ``AgentSession`` with them holds); + our call actor's modules. The
stock agent's call processes are forked from a preloaded forkserver and share these pages
copy-on-write; a Ray actor is a fresh ``python`` process and holds its own (docs/capacity.md,
"Memory per call").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bare Ray actor", ()),
    ("+ livekit-agents", ("livekit.agents",)),
    ("+ plugins (silero, deepgram, cartesia) and Silero's model",
     ("livekit.plugins.silero", "livekit.plugins.deepgram", "livekit.plugins.cartesia")),
    ("+ the OpenAI plugin", ("livekit.plugins.openai",)),
    ("+ our call actor's modules", ("actors.call_actor",)),
)


def uss_mb(pid: int | None = None) -> float:
    """Unique set size: private pages, clean and dirty, of a process."""
    total_kb = 0
    with open(f"/proc/{pid or os.getpid()}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total_kb += int(line.split()[1])
    return round(total_kb / 1024, 1)


def measure(actors: int) -> list[dict[str, Any]]:
    import ray

    @ray.remote(num_cpus=0)
    class Probe:
        def __init__(self) -> None:
            self.vad: Any = None

        def load(self, modules: tuple[str, ...]) -> int:
            import importlib

            for name in modules:
                importlib.import_module(name)
            if "livekit.plugins.silero" in modules:
                from livekit.plugins import silero

                self.vad = silero.VAD.load()
            return len(sys.modules)

        def uss(self) -> float:
            return uss_mb()

    # livekit registers plugins on a process's main thread only: a sync actor runs its methods
    # there (call actors, async, import them in Ray's setup hook instead)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        probes = [Probe.remote() for _ in range(actors)]  # type: ignore[attr-defined]
        rows = []
        for label, modules in STEPS:
            counts = ray.get([p.load.remote(modules) for p in probes])
            time.sleep(0.5)
            sizes = ray.get([p.uss.remote() for p in probes])
            rows.append({"step": label, "modules": counts[0], "uss_mb_each": sizes,
                         "uss_mb_avg": round(sum(sizes) / len(sizes), 1)})
            print(f"{label:60s} {rows[-1]['uss_mb_avg']:7.1f} MB  ({counts[0]} modules)",
                  flush=True)
        return rows
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--actors", type=int, default=3, help="actors alive at once (>= 2)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.actors < 2:
        p.error("--actors must be at least 2: with one, shared libraries count as private")
    rows = measure(args.actors)
    if args.out:
        args.out.write_text(json.dumps({"actors": args.actors, "steps": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
