"""CLI commands for the call store: backup, restore, db check|vacuum|analyze, reports, baseline.

``register(app)`` adds them to the main ``voice-ai`` app. Every failure the user can cause or fix
prints one line on stderr and exits non-zero (2: bad configuration, 1: anything else); no
traceback. The Ray-era replacements for the runbook's ``scripts/*.py`` and ``sqlite3`` commands
are listed in ``docs/operations.md``.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from voice_ai.config import Settings, load_settings
from voice_ai.errors import ConfigError
from voice_ai.store.backup import backup_database, restore_database
from voice_ai.store.baseline import (
    baseline_from_benchmark,
    baseline_from_summary,
    load_baseline,
    save_baseline,
)
from voice_ai.store.chart import write_daily_chart
from voice_ai.store.errors import StoreError
from voice_ai.store.maintenance import analyze_database, check_database, vacuum_database
from voice_ai.store.render import OutputFormat, Report, ReportKind, render
from voice_ai.store.reports import WindowSummary, summarize
from voice_ai.store.schema import open_readonly

__all__ = ["register"]

FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table, markdown or json.",
                               case_sensitive=False)
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="End of the window, ISO time (local if no offset); default now."),
]


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one stderr line and an exit code."""
    try:
        yield
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    except StoreError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except sqlite3.DatabaseError as e:
        typer.echo(f"error: database: {e}", err=True)
        raise typer.Exit(1) from None
    except OSError as e:
        typer.echo(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), err=True)
        raise typer.Exit(1) from None


def _stdout() -> Console:
    return Console(file=sys.stdout)


def _parse_until(value: str | None) -> float:
    if value is None:
        return datetime.now().timestamp()
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise typer.BadParameter(f"not an ISO date/time: {value!r}", param_hint="--until") from None


def _summary(settings: Settings, start: float, end: float) -> WindowSummary:
    conn = open_readonly(settings.db_path)
    try:
        return summarize(conn, start, end, tz=None,
                         max_concurrent_calls=settings.max_concurrent_calls)
    finally:
        conn.close()


def _report(kind: ReportKind, start: float, end: float, fmt: OutputFormat) -> Report:
    settings = load_settings()
    summary = _summary(settings, start, end)
    report = Report(kind, summary, tz=None, baseline=load_baseline(settings.baseline_path))
    render(report, fmt, _stdout())
    return report


# --- backup and restore -------------------------------------------------------------------


def backup() -> None:
    """Online backup of the live database to BACKUP_DIR, verified, with retention pruning."""
    with _user_errors():
        s = load_settings()
        result = backup_database(s.db_path, s.backup_dir,
                                 retention_days=s.backup_retention_days)
        typer.echo(f"backup written: {result.path} ({result.calls} calls, "
                   f"{result.size_bytes} bytes, integrity ok)")
        typer.echo(f"latest copy: {result.latest}")
        for p in result.pruned:
            typer.echo(f"pruned (older than {s.backup_retention_days} days): {p}")


def restore(
    file: Annotated[Path, typer.Argument(help="Backup file to restore.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Check FILE and, if it is intact, replace the live database with it. Stop calls first."""
    with _user_errors():
        s = load_settings()
        if not yes:
            typer.confirm(f"Replace {s.db_path} with {file}?", abort=True)
        result = restore_database(file, s.db_path, backup_dir=s.backup_dir)
        typer.echo(f"restored {s.db_path} from {result.restored_from} ({result.calls} calls)")
        if result.previous_copy is not None:
            typer.echo(f"previous database kept as {result.previous_copy}")


# --- db maintenance -----------------------------------------------------------------------

db_app = typer.Typer(help="Database maintenance (the runbook's sqlite3 commands).",
                     no_args_is_help=True)


@db_app.command("check")
def db_check() -> None:
    """PRAGMA integrity_check plus row counts; exit 1 when the database is damaged."""
    with _user_errors():
        result = check_database(load_settings().db_path)
        if not result.ok:
            typer.echo(f"error: integrity check failed for {result.path}: "
                       f"{'; '.join(result.problems[:3])}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{result.path}: integrity ok, schema version {result.schema_version}, "
                   f"{result.calls} calls, {result.turns} turns, {result.events} events, "
                   f"{result.size_bytes} bytes (+{result.wal_bytes} WAL)")


@db_app.command("vacuum")
def db_vacuum() -> None:
    """VACUUM and truncate the WAL."""
    with _user_errors():
        path = load_settings().db_path
        before, after = vacuum_database(path)
        typer.echo(f"vacuumed {path}: {before} -> {after} bytes")


@db_app.command("analyze")
def db_analyze() -> None:
    """ANALYZE: refresh the query planner's statistics."""
    with _user_errors():
        path = load_settings().db_path
        analyze_database(path)
        typer.echo(f"analyzed {path}")


# --- reports ------------------------------------------------------------------------------

report_app = typer.Typer(help="Reports from the call store.", no_args_is_help=True)


@report_app.command("daily")
def report_daily(
    day: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD; default today.")] = None,
    fmt: FormatOption = OutputFormat.TABLE,
    chart: Annotated[Path | None, typer.Option(
        "--chart", help="PNG path; default DATA_DIR/reports/daily-YYYY-MM-DD.png.")] = None,
    no_chart: Annotated[bool, typer.Option("--no-chart", help="Skip the PNG.")] = False,
) -> None:
    """One day (local time): calls, success, latency, fallback, errors, capacity, baseline."""
    try:
        when = date.fromisoformat(day) if day else date.today()
    except ValueError:
        raise typer.BadParameter(f"not a YYYY-MM-DD date: {day!r}", param_hint="--date") from None
    start = datetime.combine(when, time()).timestamp()
    end = datetime.combine(when + timedelta(days=1), time()).timestamp()
    with _user_errors():
        report = _report(ReportKind.DAILY, start, end, fmt)
        if not no_chart:
            path = chart or load_settings().data_dir / "reports" / f"daily-{when}.png"
            write_daily_chart(report.summary, path, title=report.title)
            typer.echo(f"chart written: {path}", err=fmt is OutputFormat.JSON)


@report_app.command("performance")
def report_performance(
    last_hour: Annotated[bool, typer.Option(
        "--last-hour", help="The hour before --until (the default window).")] = False,
    minutes: Annotated[int | None, typer.Option(
        "--minutes", min=1, help="Window length in minutes instead of an hour.")] = None,
    until: UntilOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Latency per stage, success rate, fallback and errors over the last hour."""
    if last_hour and minutes not in (None, 60):
        raise typer.BadParameter("use either --last-hour or --minutes", param_hint="--minutes")
    end = _parse_until(until)
    with _user_errors():
        _report(ReportKind.PERFORMANCE, end - 60 * (minutes or 60), end, fmt)


@report_app.command("capacity")
def report_capacity(
    last_month: Annotated[bool, typer.Option(
        "--last-month", help="The 30 days before --until (the default window).")] = False,
    days: Annotated[int | None, typer.Option(
        "--days", min=1, help="Window length in days instead of 30.")] = None,
    until: UntilOption = None,
    fmt: FormatOption = OutputFormat.TABLE,
) -> None:
    """Calls per day, busiest day and hour, peak concurrency, headroom vs MAX_CONCURRENT_CALLS."""
    if last_month and days not in (None, 30):
        raise typer.BadParameter("use either --last-month or --days", param_hint="--days")
    end = _parse_until(until)
    with _user_errors():
        _report(ReportKind.CAPACITY, end - 86_400 * (days or 30), end, fmt)


# --- baseline -----------------------------------------------------------------------------

baseline_app = typer.Typer(help="The performance baseline reports compare against.",
                           no_args_is_help=True)


@baseline_app.command("update")
def baseline_update(
    source: Annotated[Path | None, typer.Option(
        "--from", help="Benchmark result JSON with a top-level \"summary\" object.")] = None,
    days: Annotated[int, typer.Option(
        "--days", min=1, help="Without --from: the last N days of the database.")] = 7,
) -> None:
    """Store a new baseline at BASELINE_PATH, from the database or a benchmark result."""
    with _user_errors():
        s = load_settings()
        now = datetime.now().astimezone()
        if source is not None:
            baseline = baseline_from_benchmark(source, now=now)
        else:
            end = now.timestamp()
            summary = _summary(s, end - 86_400 * days, end)
            baseline = baseline_from_summary(summary, source=f"database:last {days} days",
                                             now=now)
        save_baseline(baseline, s.baseline_path)
        e2e = baseline.latency_s["e2e"]
        figures = ", ".join(f"{k} {v:.3f} s" for k, v in e2e.items())
        typer.echo(f"baseline written: {s.baseline_path} ({baseline.source}; end to end "
                   f"{figures})")


def register(app: typer.Typer) -> None:
    """Add ``backup``, ``restore``, ``db``, ``report`` and ``baseline`` to ``app``."""
    app.command("backup")(backup)
    app.command("restore")(restore)
    app.add_typer(db_app, name="db")
    app.add_typer(report_app, name="report")
    app.add_typer(baseline_app, name="baseline")
