"""A scenario that builds its own Ray cluster (``ray.cluster_utils``) cannot share a process
with the test session's Ray: it runs as ``python -m tests.<module> --out FILE`` and leaves one
JSON object in FILE, which the tests assert on (``tests/multinode_scenario.py``,
``tests/autoscaling_scenario.py``)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

Scenario = Callable[[dict[str, Any], Path], None]  # fills ``out`` using ``root`` for its files


def run_module(module: str, timeout_s: float) -> dict[str, Any]:
    """``python -m module --out FILE`` in a subprocess; its JSON, or ``{"error": ...}``."""
    with tempfile.TemporaryDirectory(prefix="voice-ai-scenario-out-") as tmp:
        out = Path(tmp) / "result.json"  # a file: Ray and Serve also write to stdout
        proc = subprocess.run([sys.executable, "-m", module, "--out", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout_s)
        try:
            result: dict[str, Any] = json.loads(out.read_text())
        except (OSError, json.JSONDecodeError):
            result = {"error": f"no JSON (exit {proc.returncode}): {proc.stderr[-3000:]}"}
    return result


def main(run: Scenario, description: str) -> None:
    """The scenario's command line: run it, print its JSON (and write it to ``--out``); exit 1
    when it recorded an error. ``--keep DIR`` keeps its logs, store and recordings."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--keep", type=Path,
                        help="keep the run's logs, store and recordings in this folder")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="voice-ai-scenario-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        try:
            run(out, root)
        except Exception as e:
            out["error"] = f"{type(e).__name__}: {e}"
    text = json.dumps(out, indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(text)
    print(text)
    sys.exit(1 if "error" in out else 0)
