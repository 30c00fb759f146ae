"""The printed table of a load run: ours next to the baseline, then the ratios and density."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_report"]


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _stats(s: dict[str, Any] | None) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{_f(s['avg'])} / {_f(s['p50'])} / {_f(s['p95'])} / {_f(s['p99'])}  (n={s['n']})"


def _rows(side: dict[str, Any]) -> list[tuple[str, str]]:
    mem = side["memory_per_call_uss_mb"]
    rows = [
        ("calls completed / attempted", f"{side['calls_completed']} / {side['calls_attempted']}"),
        ("success rate", f"{side['success_rate']:.1%}"),
        ("concurrency reached", str(side["concurrency_reached"])),
        ("e2e ms avg/p50/p95/p99", _stats(side["e2e_ms"])),
        ("overhead ms avg/p50/p95/p99", _stats(side["overhead_ms"])),
    ]
    rows += [(f"  overhead {k} ms", _stats(v)) for k, v in side["overhead_by_stage_ms"].items()]
    rows += [(f"stage {k} ms", _stats(v)) for k, v in side["stages_ms"].items()]
    rows += [
        ("providers applied ms", _stats(side["provider_applied_ms"])),
        ("setup warm ms", _stats(side["setup_warm_ms"])),
        ("setup cold ms", _stats(side.get("setup_cold_ms"))),
        ("CPU core-s per call-minute", _f(side["cpu_core_s_per_call_minute"], 2)),
        ("USS per call MB avg / max", f"{_f(mem['avg'])} / {_f(mem['max'])}"),
        ("USS whole system peak MB", _f(side["memory_peak_total_uss_mb"])),
        ("USS whole system / call MB", _f(side["memory_total_per_concurrent_call_mb"])),
    ]
    return rows


def print_report(console: Console, result: dict[str, Any]) -> None:
    ours, base = result["ours"], result.get("baseline")
    table = Table(title=f"{result['concurrent_calls']} concurrent calls, profile "
                        f"{result['profile']} ({result['mode']}), "
                        f"{result['machine']['cpus']} cores, load "
                        f"{result['machine']['load_avg_before'][0]}")
    table.add_column("metric")
    table.add_column("ours (Ray)", justify="right")
    if base:
        table.add_column("baseline (process per call)", justify="right")
    base_rows = dict(_rows(base)) if base else {}
    for name, value in _rows(ours):
        table.add_row(name, value, *([base_rows.get(name, "-")] if base else []))
    console.print(table)
    if result.get("ratios"):
        console.print("ours / baseline: " + ", ".join(
            f"{k} {_f(v, 3)}" for k, v in result["ratios"].items()))
    dens = result.get("density")
    if dens:
        for step in dens["steps"]:
            console.print(f"density {step['calls']:>3} calls: p95 overhead "
                          f"{_f(step['overhead_p95_ms'])} ms, success "
                          f"{step['success_rate']:.1%}, reached {step['concurrency_reached']}"
                          f"{'' if step['within_limits'] else '  <- over the limits'}")
        console.print(f"highest within limits: {dens['highest_calls_within_limits']} calls = "
                      f"{dens['calls_per_core']} calls per core")
    for side, data in (("ours", ours), ("baseline", base)):
        if data and data.get("cpu_core_s_by_process"):
            top = list(data["cpu_core_s_by_process"].items())[:6]
            console.print(f"{side} CPU core-s by process: "
                          + ", ".join(f"{k} {v:.1f}" for k, v in top))
    for side, data in (("ours", ours), ("baseline", base)):
        if data and data["errors"]:
            console.print(f"[red]{side} errors:[/] " + "; ".join(data["errors"]))
