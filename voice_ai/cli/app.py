"""The Typer app with every command that needs no Ray: store, reports, SIP provisioning."""

from __future__ import annotations

import typer

__all__ = ["app", "fail"]

app = typer.Typer(
    name="voice-ai",
    help="Phone voice agent on Ray: run calls, check the system, manage the store and SIP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _register_commands() -> None:
    # each command group lives in its own module next to this one
    from voice_ai.cli import sip_cmds, store_cmds

    store_cmds.register(app)
    sip_cmds.register(app)


_register_commands()
