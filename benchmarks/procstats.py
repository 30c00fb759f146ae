"""CPU and memory of a process tree over a benchmark phase, sampled on a thread.

Every process below this one (Ray's raylet, GCS, workers, call actors; or the baseline's call
processes) is polled every ``interval_s``: CPU time (user + system) and USS. A process that
exits keeps its last sample, so a retired call actor still counts. The benchmark driver itself
(which also hosts the provider simulators) is not counted on either side.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil

__all__ = ["ProcessSampler", "TreeUsage", "process_kind"]


def process_kind(cmdline: str) -> str:
    """What a process is, for the CPU breakdown: ``ray::CallActor``, ``raylet``, ``gcs_server``,
    ``python -m benchmarks.baseline``..."""
    words = cmdline.split()
    if not words:
        return "?"
    if "multiprocessing.forkserver" in cmdline:
        return "stock agent (forkserver and its call processes)"
    if words[0].startswith("ray::"):
        return words[0].split(".")[0]  # an actor, busy or idle, or a task
    name = os.path.basename(words[0])
    if name.startswith("python") and len(words) > 2 and words[1] == "-m":
        return f"python -m {words[2]}"
    if name.startswith("python") and len(words) > 1:
        return f"python {os.path.basename(words[1])}"
    return name


@dataclass
class _Proc:
    label: str
    cpu_start_s: float
    cpu_last_s: float
    uss_peak: int = 0
    uss_last: int = 0
    in_call: bool = False
    call_kind: bool = False  # a process of the call kind, busy or idle
    exited: bool = False


@dataclass
class TreeUsage:
    cpu_s: float
    wall_s: float
    peak_total_uss: int
    call_process_uss_peaks: list[int] = field(default_factory=list)
    processes: int = 0
    cpu_s_by_kind: dict[str, float] = field(default_factory=dict)


class ProcessSampler:
    """``start()`` at the beginning of a phase, ``stop()`` at its end -> ``TreeUsage``.

    ``call_marker``: a substring of a process's command line while it runs a call (Ray sets the
    title ``ray::CallActor.run_call``); those processes' peak USS is memory per call.
    ``kind_marker`` (optional): a substring of the command line of every process of that kind,
    busy or idle (``ray::CallActor``). Ray resets an async actor's title when any other method
    of it finishes (the dispatcher polls ``stats()`` during calls), so the busy title can be gone
    before a sample sees it; a process of the kind that exits during the phase also counts as
    having served a call (an actor that goes back to the warm pool after its call and is never
    seen busy is not counted, so ``n`` can be below the number of calls).
    """

    def __init__(self, call_marker: str, interval_s: float = 0.5,
                 kind_marker: str | None = None, uss_every: int = 6,
                 include: Callable[[str], bool] | None = None) -> None:
        self._root = psutil.Process(os.getpid())
        self._marker = call_marker
        self._include = include  # which processes (by command line) belong to the side
        self._kind_marker = kind_marker
        self._interval_s = interval_s
        # USS walks every mapping of a process (smaps_rollup): at every 0.5 s sample this
        # sampler alone took ~30 % of a core in kernel time, stolen from the system measured
        self._uss_every = uss_every
        self._samples = 0
        self._procs: dict[int, _Proc] = {}
        self._peak_total = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="proc-sampler", daemon=True)
        self._started = 0.0

    def start(self) -> ProcessSampler:
        self._started = time.time()
        self._sample(initial=True)
        self._thread.start()
        return self

    def settle(self, calls: int, timeout_s: float = 10.0) -> None:
        """Wait (bounded) until ``calls`` call processes are known: a retired call actor's
        process exits a moment after its record comes back."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._sample(initial=False)
            if len(self._call_peaks()) >= calls:
                return
            time.sleep(0.1)

    def mark_in_call(self, pids: Iterable[int]) -> None:
        """Processes the system itself says ran a call in this phase: what the title often
        cannot show (Ray resets it; in the 8- and 12-call runs of 2026-12-01 no sample saw a
        busy title, and the USS per call came out empty)."""
        with self._lock:
            for pid in pids:
                known = self._procs.get(pid)
                if known is not None:
                    known.in_call = True

    @staticmethod
    def _served_call(p: _Proc) -> bool:
        return p.in_call or (p.call_kind and p.exited)

    def _call_peaks(self) -> list[int]:
        return [p.uss_peak for p in self._procs.values() if self._served_call(p) and p.uss_peak]

    def stop(self) -> TreeUsage:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample(initial=False, uss=True)
        cpu = sum(p.cpu_last_s - p.cpu_start_s for p in self._procs.values())
        by_kind: dict[str, float] = {}
        for p in self._procs.values():
            kind = process_kind(p.label)
            if self._kind_marker is not None and p.call_kind:
                # the split is a hint: Ray resets a busy actor's title whenever another of
                # its methods ends, so a call actor can run a call and never be seen doing so
                kind += " (seen in a call)" if self._served_call(p) else " (not seen in a call)"
            by_kind[kind] = by_kind.get(kind, 0.0) + p.cpu_last_s - p.cpu_start_s
        return TreeUsage(cpu_s_by_kind=dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
                         cpu_s=cpu, wall_s=time.time() - self._started,
                         peak_total_uss=self._peak_total, call_process_uss_peaks=self._call_peaks(),
                         processes=len(self._procs))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample(initial=False)

    def _sample(self, *, initial: bool, uss: bool | None = None) -> None:
        with self._lock:
            self._samples += 1
            full = uss if uss is not None else initial or self._samples % self._uss_every == 0
            self._sample_locked(initial=initial, full_uss=full)

    def _sample_locked(self, *, initial: bool, full_uss: bool) -> None:
        total = 0
        try:
            children = self._root.children(recursive=True)
        except psutil.Error:
            return
        alive: set[int] = set()
        for proc in children:
            try:
                known = self._procs.get(proc.pid)
                with proc.oneshot():
                    t = proc.cpu_times()
                    cpu = t.user + t.system
                    cmd = " ".join(proc.cmdline())
                    if self._include is not None and not self._include(cmd):
                        continue
                    new_call = ((self._marker in cmd or (self._kind_marker or "\0") in cmd)
                                and (known is None or not known.uss_peak))
                    uss = (proc.memory_full_info().uss if full_uss or known is None or new_call
                           else known.uss_last)
            except psutil.Error:  # gone, or a zombie waiting to be reaped
                continue
            alive.add(proc.pid)
            if known is None:
                # a process born during the phase counts from zero (its start-up is real cost)
                known = _Proc(label=cmd[:300], cpu_start_s=cpu if initial else 0.0,
                              cpu_last_s=cpu)
                self._procs[proc.pid] = known
            known.cpu_last_s = cpu
            if not cmd.startswith("ray::IDLE"):  # a pooled worker becomes an actor later
                known.label = cmd[:300]
            if self._marker in cmd:
                known.in_call = True
            if self._kind_marker is not None and self._kind_marker in cmd:
                known.call_kind = True
            known.uss_last = uss
            if known.in_call or known.call_kind:
                known.uss_peak = max(known.uss_peak, uss)
            total += uss
        for pid, known in self._procs.items():
            if pid not in alive:
                known.exited = True
        self._peak_total = max(self._peak_total, total)
