"""The printed tables of a load run: each phase with ours next to the stock agent, the ratios,
the must-show figures against their targets, the capacity sweep and the profile."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["SIDES", "TARGETS", "print_report"]

SIDES = {"ours": "ours (Ray)", "stock": "stock agent (VAD turns)",
         "stock_td": "stock agent (TurnDetector)"}

# (derived key, what, target text, check)
TARGETS = [
    ("one_call", "1 call: ours e2e p50 <= 800 ms",
     lambda d: d["ours_e2e_ms"].get("p50", 1e9) <= 800),
    ("one_call", "1 call: ours e2e p95 <= 900 ms",
     lambda d: d["ours_e2e_ms"].get("p95", 1e9) <= 900),
    ("one_call", "1 call: ours / stock e2e p95 <= 0.9",
     lambda d: (d.get("ratio_p95") or 9) <= 0.9),
    ("concurrent", "concurrent calls: ours e2e p95 <= 1200 ms",
     lambda d: d["ours_e2e_ms"].get("p95", 1e9) <= 1200),
    ("concurrent", "concurrent calls: every turn answered (ours)",
     lambda d: d["ours_unanswered"] == 0),
    ("concurrent", "concurrent calls: every turn answered (stock)",
     lambda d: d.get("stock_unanswered", 1) == 0),
    ("zero", "Ray's cost per turn (ours - stock, p50, zero profile) <= 30 ms",
     lambda d: d.get("ray_cost_ms_p50", 1e9) <= 30),
    ("capacity", "SLO capacity: ours >= 8 calls per core (issue #13)",
     lambda d: d["ours"]["calls_per_core"] >= 8),
    ("capacity", "SLO capacity: ours >= stock",
     lambda d: "stock" in d and d["ours"]["calls"] >= d["stock"]["calls"]),
    ("concurrent", "USS per call actor <= 120 MB (avg, concurrent calls)",
     lambda d: (d["ours_uss_per_call_mb"].get("avg") or 1e9) <= 120),
    ("concurrent", "CPU per call-minute: ours <= 0.8 x stock (concurrent calls)",
     lambda d: (d.get("ratio_cpu_per_call_minute") or 9) <= 0.8),
]


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _stats(s: dict[str, Any] | None) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{_f(s['avg'])} / {_f(s['p50'])} / {_f(s['p95'])} / {_f(s['max'])}  (n={s['n']})"


def _rows(side: dict[str, Any]) -> list[tuple[str, str]]:
    mem = side["memory_per_call_uss_mb"]
    rows = [
        ("calls completed / attempted", f"{side['calls_completed']} / {side['calls_attempted']}"),
        ("turns answered / expected (unanswered)",
         f"{side['turns_answered']} / {side['turns_expected']} ({side['turns_unanswered']})"),
        ("concurrency reached", str(side["concurrency_reached"])),
        ("e2e ms avg / p50 / p95 / max", _stats(side["e2e_ms"])),
    ]
    rows += [(f"stage {k} ms", _stats(v)) for k, v in side["stages_ms"].items()]
    rows += [
        ("setup warm ms", _stats(side["setup_warm_ms"])),
        ("CPU core-s per call-minute", _f(side["cpu_core_s_per_call_minute"], 2)),
        ("USS per call process MB avg / max", f"{_f(mem['avg'])} / {_f(mem['max'])}"),
        ("USS whole side peak MB", _f(side["memory_peak_total_uss_mb"])),
        ("lines recognised by the STT simulator", _f(side.get("lines_recognised"))),
    ]
    return rows


def _phase(console: Console, phase: dict[str, Any]) -> None:
    sides = [n for n in SIDES if n in phase]
    table = Table(title=f"{phase['name']}: {phase['calls']} concurrent x {phase['per_slot']} "
                        f"({', '.join(phase['scenarios'])}), profile {phase['profile']}, "
                        f"load {phase['load_avg_before']} -> {phase['load_avg_after']}")
    table.add_column("metric")
    for name in sides:
        table.add_column(SIDES[name], justify="right")
    rows = {name: dict(_rows(phase[name])) for name in sides}
    for metric in rows[sides[0]]:
        table.add_row(metric, *(rows[n].get(metric, "-") for n in sides))
    console.print(table)
    for key, label in (("ratios", "ours / stock"), ("ratios_td", "ours / stock_td")):
        if phase.get(key):
            console.print(f"{label}: " + ", ".join(f"{k} {_f(v, 3)}"
                                                   for k, v in phase[key].items()))
    for name in sides:
        top = list(phase[name]["cpu_core_s_by_process"].items())[:6]
        if top:
            console.print(f"{name} CPU core-s by process: "
                          + ", ".join(f"{k} {v:.1f}" for k, v in top))
        if phase[name]["errors"]:
            console.print(f"[red]{name} errors:[/] " + "; ".join(phase[name]["errors"][:5]))


def _targets(console: Console, derived: dict[str, Any]) -> None:
    rows = [(what, derived[key], check) for key, what, check in TARGETS if key in derived]
    if not rows:
        return
    table = Table(title="targets (issues #12, #13)")
    table.add_column("target")
    table.add_column("met?", justify="center")
    for what, data, check in rows:
        table.add_row(what, "yes" if check(data) else "NO")
    console.print(table)
    for key, data in derived.items():
        console.print(f"{key}: " + ", ".join(_derived_item(k, v) for k, v in data.items()))


def _derived_item(key: str, value: Any) -> str:
    if isinstance(value, dict) and "p95" in value:
        return f"{key} {value.get('p50')}/{value.get('p95')} ms (p50/p95, n={value.get('n')})"
    if isinstance(value, dict) and "avg" in value:
        return f"{key} avg {value.get('avg')} max {value.get('max')}"
    return f"{key} {value}"


def _capacity(console: Console, cap: dict[str, Any]) -> None:
    for level in cap["levels"]:
        console.print(f"capacity {level['level']:>3} calls: " + ", ".join(
            f"{n} p95 {_f(level.get(f'{n}_e2e_p95_ms'))} ms unanswered "
            f"{level.get(f'{n}_unanswered')}{'' if level.get(f'{n}_within_slo') else ' OVER'}"
            for n in ("ours", "stock") if f"{n}_within_slo" in level))
    for name in ("ours", "stock"):
        if name in cap:
            c = cap[name]
            console.print(f"SLO capacity {name}: {c['calls']} calls = {c['calls_per_core']} per "
                          f"core; CPU core-s per call-minute {c.get('cpu_core_s_per_call_minute')}"
                          f"; USS per call {c.get('uss_per_call_mb')}")
    if "ours_over_stock" in cap:
        console.print(f"ours / stock capacity: {cap['ours_over_stock']}")
    console.print(f"sweep stopped by: {cap.get('stopped_by')} after {cap.get('seconds')} s "
                  f"(budget {cap.get('budget_s')})")


def _profile(console: Console, prof: dict[str, Any]) -> None:
    console.print(f"call actors: {prof['call_actor_core_s_per_call_minute']} core-s per "
                  f"call-minute; py-spy on pid {prof['py_spy_pid']} "
                  f"({prof.get('samples', 0)} samples) {prof['py_spy_error'] or ''}")
    if prof.get("call_actor_threads"):
        console.print("  threads (share of a core): " + ", ".join(
            f"{t['thread']} {t['core_share']:.3f}" for t in prof["call_actor_threads"]))
    for key in ("by_area", "self", "inclusive"):
        for row in prof.get(key, [])[:12]:
            console.print(f"  {key:9} {row['share']:6.1%}  {row['what']}")


def print_report(console: Console, result: dict[str, Any]) -> None:
    m = result["machine"]
    console.print(f"{result['mode']}: {m['cpus']} cores, load average {m['load_avg_before']} "
                  f"before, {m['load_avg_after']} after")
    for phase in result["phases"]:
        _phase(console, phase)
    if result.get("derived"):
        _targets(console, result["derived"])
    if result.get("capacity"):
        _capacity(console, result["capacity"])
    if result.get("profile"):
        _profile(console, result["profile"])
