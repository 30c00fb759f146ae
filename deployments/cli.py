"""``voice-ai`` entry point: the pure commands of ``voice_ai.cli`` plus ``run`` and ``doctor``.

Everything the user can get wrong (settings, scenario files, a busy port) is checked before
Ray starts, so a mistake costs one line and exit code 2, and leaves no Ray processes behind.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from deployments import ops_cli  # noqa: F401  (registers `voice-ai pool ...`, `call test`)
from voice_ai.cli.app import app, fail
from voice_ai.config import Settings, load_settings
from voice_ai.errors import ConfigError, ScenarioError
from voice_ai.pipeline.scenario import Scenario, load_scenario

console = Console()
DEFAULT_SCENARIOS = Path("scenarios")


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as e:
        raise fail(str(e), code=2) from None


def _profile_or_exit(settings: Settings) -> None:
    """The business profile is checked before Ray starts: one ``error:`` line per problem."""
    from voice_ai.agent.profile import ProfileError, load_profile

    try:
        load_profile(settings.agent_profile_path)
    except ProfileError as e:
        for problem in e.problems[:-1]:
            typer.echo(f"error: {problem}", err=True)
        raise fail(e.problems[-1], code=2) from None


def _scenarios_or_exit(path: Path | None) -> list[Scenario]:
    try:
        if path is not None:
            return [load_scenario(path)]
        files = sorted(DEFAULT_SCENARIOS.glob("*.yaml"))
        if not files:
            raise ScenarioError(f"no scenario files in {DEFAULT_SCENARIOS}/; pass --scenario FILE")
        return [load_scenario(f) for f in files]
    except ScenarioError as e:
        raise fail(str(e), code=2) from None


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1" if host in ("0.0.0.0", "") else host, port))
        except OSError:
            return True
    return False


@app.command()
def run(
    calls: Annotated[int, typer.Option("--calls", min=1, max=1000,
                                       help="Simulated calls to run.")] = 3,
    scenario: Annotated[Path | None, typer.Option(
        "--scenario", help="Scenario YAML (default: every file in scenarios/, in turn).")] = None,
    exit_after: Annotated[bool, typer.Option(
        "--exit", help="Exit after the calls instead of serving until Ctrl-C.")] = False,
    dashboard: Annotated[bool, typer.Option(
        "--dashboard", help="Start the Ray dashboard too.")] = False,
) -> None:
    """Start local Ray, the pools and the Serve app; run simulated calls; keep serving."""
    settings = _settings_or_exit()
    _profile_or_exit(settings)
    scenarios = _scenarios_or_exit(scenario)
    if port_in_use(settings.http_host, settings.http_port):
        raise fail(f"HTTP_PORT={settings.http_port} is already in use; stop what holds it or "
                   f"set HTTP_PORT", code=2)
    if settings.internal_http_port and port_in_use(settings.internal_http_host,
                                                   settings.internal_http_port):
        raise fail(f"INTERNAL_HTTP_PORT={settings.internal_http_port} is already in use; stop "
                   "what holds it or set INTERNAL_HTTP_PORT", code=2)
    _require_ray_token_auth()

    from deployments.local import LocalSystem, print_results

    with LocalSystem(settings, dashboard=dashboard, console=console) as system:
        plan = list(itertools.islice(itertools.cycle(scenarios), calls))
        records = system.run_calls(plan)
        print_results(console, records)
        failed = [r for r in records if r.outcome.value != "completed"]
        if exit_after:
            if failed:
                raise typer.Exit(1)
            return
        from deployments.internal_face import internal_url

        console.print(f"[bold]serving[/] http://{settings.http_host}:{settings.http_port}/health"
                      f" (public face); {internal_url(settings)}/health/detailed, /metrics, "
                      "/docs (internal face) — Ctrl-C to stop", soft_wrap=True)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopping")


def _require_ray_token_auth() -> None:
    """The local Ray cluster this command starts accepts only clients holding its token
    (Ray generates one in ~/.ray/auth_token). Explicit, not left to Ray's default, which
    changed between releases; RAY_AUTH_MODE=disabled is honoured with a warning."""
    mode = os.environ.setdefault("RAY_AUTH_MODE", "token")
    if mode.lower() != "token":
        console.print(f"[yellow]warning:[/] RAY_AUTH_MODE={mode}: the local Ray cluster accepts "
                      "any client that reaches it (docs/security.md)")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@app.command()
def doctor() -> None:
    """Check the environment: settings, shipped models, port, Ray. Says what is wrong."""
    from deployments.doctor import run_checks

    ok = run_checks(console)
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
