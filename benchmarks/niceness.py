"""How late a call's event loop wakes at a given niceness while the CPU is saturated.

    python -m benchmarks.niceness                  # probes at 15 and 18 beside 4 busy workers
    python -m benchmarks.niceness --nice 15,18 --busy 4 --busy-nice 15 --seconds 20

A call actor's loop wakes every 20 ms (a caller frame) and works ~2 ms (about 10 % of a
core, as measured at 8 calls). Ray starts its workers at niceness 15; CALL_ACTOR_NICE adds to
a call actor's. Beside CPU-bound processes at the workers' niceness (pools, a warm-pool
refill, the callers' host), each probe process (one per ``--nice`` value, all at once, so they
see the same machine) runs that loop and records how late each frame's work started; a probe
that falls behind catches up without sleeping, as an event loop with a backlog does.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from typing import Any

PERIOD_S = 0.020


def _renice(target: int) -> None:
    current = os.nice(0)
    if target > current:
        os.nice(target - current)


def _busy(nice: int, until: float) -> None:
    _renice(nice)
    x = 0
    while time.monotonic() < until:
        x += 1


def _probe(nice: int, until: float, work_s: float, out: Any) -> None:
    _renice(nice)
    late: list[float] = []
    next_at = time.monotonic() + PERIOD_S
    while next_at < until:
        time.sleep(max(0.0, next_at - time.monotonic()))
        late.append(time.monotonic() - next_at)
        spent = time.thread_time() + work_s
        while time.thread_time() < spent:  # the frame's work: CPU time, not wall time
            pass
        next_at += PERIOD_S
    late.sort()

    def q(p: float) -> float:
        return round(1000 * late[min(len(late) - 1, int(p * len(late)))], 1)

    out.put({"nice": nice, "wakeups": len(late), "late_ms_p50": q(0.5), "late_ms_p95": q(0.95),
             "late_ms_p99": q(0.99), "late_ms_max": round(1000 * late[-1], 1)})


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.niceness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nice", default="15,18", help="probe niceness values, run at once")
    p.add_argument("--busy", type=int, default=4, help="CPU-bound processes beside them")
    p.add_argument("--busy-nice", type=int, default=15)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--work-ms", type=float, default=2.0, help="CPU per 20 ms frame")
    args = p.parse_args(argv)
    nices = [int(n) for n in args.nice.split(",") if n.strip()]
    until = time.monotonic() + args.seconds
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_busy, args=(args.busy_nice, until)) for _ in range(args.busy)]
    procs += [ctx.Process(target=_probe, args=(n, until, args.work_ms / 1000, out))
              for n in nices]
    load_before = os.getloadavg()[0]
    for proc in procs:
        proc.start()
    results = sorted((out.get() for _ in nices), key=lambda r: int(r["nice"]))
    for proc in procs:
        proc.join()
    print(json.dumps({"cpus": os.cpu_count(), "busy": args.busy, "busy_nice": args.busy_nice,
                      "seconds": args.seconds, "work_ms": args.work_ms,
                      "load_avg_before": round(load_before, 2),
                      "probes": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
