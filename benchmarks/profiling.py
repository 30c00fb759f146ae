"""Where a call actor's CPU goes: py-spy on one busy call actor while N calls run, plus the CPU
of every process of the system (``--mode profile`` of benchmarks.load).

The profile is sampled without stopping the process (``--nonblocking``), on-CPU threads only,
and summarised three ways: by area (livekit-agents' pipeline, the audio/rtc layer, Silero VAD,
the plugins' network clients, Ray, asyncio, our code, the simulated caller...), by function
where the time was spent (self), and by function on the stack (inclusive).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from benchmarks.sides import CALL_ACTOR_MARKER, Phase

__all__ = ["AREAS", "area_of", "profile_calls", "summarise"]

# first match wins: a frame's file path -> the area it belongs to
AREAS: list[tuple[str, str]] = [
    ("simulated caller (test harness)", r"voice_ai/pipeline/(simulated|recorder)\.py"),
    ("our code (voice_ai, actors)", r"(voice_ai|actors)/"),
    ("Silero VAD / onnxruntime", r"(silero|onnxruntime)"),
    ("turn detector", r"(local_inference|inference/eot)"),
    ("livekit rtc (audio frames, resampling)", r"livekit/rtc/"),
    ("livekit-agents voice pipeline", r"livekit/agents/voice/"),
    ("livekit-agents stt/llm/tts + plugins", r"livekit/(agents/(stt|llm|tts|inference)|plugins)"),
    ("livekit-agents other", r"livekit/agents/"),
    ("network clients (aiohttp, httpx, openai)", r"(aiohttp|httpx|httpcore|openai/|websockets)"),
    ("Ray (core worker, serialization)", r"ray/"),
    ("asyncio event loop", r"asyncio/"),
    ("numpy", r"numpy/"),
    ("logging, json, other stdlib", r"(logging|json|threading|concurrent)/"),
]
# innermost frames of threads that wait rather than work: ``--nonblocking`` sampling cannot
# always tell (a thread pool's queue.get, a thread inside native code, Ray's core worker loop)
IDLE_LEAVES = {("_worker", "concurrent/futures/thread.py"), ("Thread.run", "threading.py"),
               ("Worker.main_loop", "ray/_private/worker.py")}
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def area_of(path: str) -> str:
    for area, pattern in AREAS:
        if re.search(pattern, path):
            return area
    return "other"


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for part in stack.split(";"):
        m = _FRAME.match(part.strip())
        if m:
            out.append((m["func"], m["file"]))
    return out


def summarise(lines: Iterable[str], top: int = 15) -> dict[str, Any]:
    """py-spy raw output (``stack count`` lines) -> shares by area, self and inclusive."""
    total = idle = 0
    by_area: Counter[str] = Counter()
    by_self: Counter[str] = Counter()
    by_incl: Counter[str] = Counter()
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if not frames:
            continue
        if any(frames[-1][0] == func and frames[-1][1].endswith(file)
               for func, file in IDLE_LEAVES):
            idle += count
            continue
        total += count
        # the area of a sample: the innermost frame that is not stdlib plumbing
        innermost = frames[-1]
        by_self[f"{innermost[0]} ({innermost[1]})"] += count
        areas = [area_of(f) for _, f in frames]
        specific = next((a for a in reversed(areas) if a not in (
            "asyncio event loop", "logging, json, other stdlib", "other")), areas[-1])
        by_area[specific] += count
        for name in {f"{func} ({file})" for func, file in frames}:
            by_incl[name] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"what": k, "share": round(v / total, 3), "samples": v}
                for k, v in counter.most_common(top)]

    return {"samples": total, "idle_samples_dropped": idle,
            "by_area": share(by_area), "self": share(by_self),
            "inclusive": share(by_incl)}


def _busiest_call_actor(wait_s: float = 60.0) -> int | None:
    """The call actor using the most CPU over one second, once calls are running (by CPU, not
    by title: Ray resets a busy async actor's title whenever another of its methods ends)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        actors = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if cmd.startswith(CALL_ACTOR_MARKER):
                actors.append(p)
        if actors:
            for p in actors:
                p.cpu_percent()
            time.sleep(1.0)
            usage = []
            for p in actors:
                try:
                    usage.append((p.cpu_percent(), p.pid))
                except psutil.Error:
                    continue
            if usage:
                return max(usage)[1]
        time.sleep(0.5)
    return None


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """``{tid: (thread name, CPU seconds)}`` of a process (native threads included: Ray's
    core worker, gRPC, onnxruntime are invisible to py-spy's Python stacks)."""
    out: dict[int, tuple[str, float]] = {}
    tick = float(os.sysconf("SC_CLK_TCK"))
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def threads_used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                 seconds: float) -> list[dict[str, Any]]:
    """CPU share of a core by thread name between two ``thread_cpu`` snapshots."""
    used: Counter[str] = Counter()
    for tid, (name, cpu) in after.items():
        used[re.sub(r"\d+$", "", name) or name] += cpu - before.get(tid, (name, 0.0))[1]
    return [{"thread": k, "core_share": round(v / max(seconds, 1e-9), 3)}
            for k, v in used.most_common(12) if v > 0]


def _py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def profile_calls(run: Any, ours: Any, phase: Phase, profile: str,
                  seconds: float) -> dict[str, Any]:
    """Run ``phase`` on our side with py-spy recording the busiest call actor meanwhile."""
    out_file = Path(run.args.out or "benchmarks/results/profile").with_suffix(".pyspy.txt")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    spy = _py_spy()
    recorded: dict[str, Any] = {"pid": None, "error": None, "threads": []}

    def record() -> None:
        if spy is None:
            recorded["error"] = "py-spy not installed"
            return
        time.sleep(phase.ramp_s + 5.0)  # every call started and past its greeting
        pid = _busiest_call_actor()
        recorded["pid"] = pid
        if pid is None:
            recorded["error"] = "no busy call actor found"
            return
        before, t0 = thread_cpu(pid), time.monotonic()
        proc = subprocess.run(
            [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
             "--format", "raw", "--nonblocking", "--output", str(out_file)],
            capture_output=True, text=True, check=False)
        recorded["threads"] = threads_used(before, thread_cpu(pid), time.monotonic() - t0)
        if proc.returncode != 0:
            recorded["error"] = proc.stderr[-500:]

    thread = threading.Thread(target=record, name="py-spy", daemon=True)
    thread.start()
    result = run.phase([ours], phase, profile)
    thread.join(timeout=seconds + 90)
    side = result["ours"]
    call_kind = {k: v for k, v in side["cpu_core_s_by_process"].items()
                 if k.startswith("ray::CallActor")}
    minutes = side["call_minutes"] or 1.0
    summary: dict[str, Any] = {"py_spy_pid": recorded["pid"], "py_spy_error": recorded["error"],
                               "py_spy_file": str(out_file), "seconds": seconds,
                               "call_actor_threads": recorded["threads"],
                               "cpu_core_s_by_process": side["cpu_core_s_by_process"],
                               "call_actor_core_s_per_call_minute": round(
                                   sum(call_kind.values()) / minutes, 3)}
    if out_file.exists() and recorded["error"] is None:
        summary |= summarise(out_file.read_text().splitlines())
    return summary
