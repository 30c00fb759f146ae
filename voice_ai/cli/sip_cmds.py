"""``voice-ai sip provision FILE`` and ``voice-ai sip show``: LiveKit SIP setup from YAML.

Failures print one line on stderr and exit non-zero (2: bad configuration, 1: anything else),
never a traceback. A bad provisioning file is refused before LiveKit is contacted.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import aiohttp
import typer
from livekit import api
from rich.console import Console
from rich.table import Table

from voice_ai.config import load_settings
from voice_ai.errors import ConfigError
from voice_ai.telephony.credentials import open_livekit_api
from voice_ai.telephony.phone import redact_numbers
from voice_ai.telephony.provisioning import (
    ProvisionError,
    ProvisionResult,
    ProvisionSpec,
    SipOverview,
    load_fingerprint_key,
    load_spec,
    provision,
    show,
)

__all__ = ["register"]


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    except ProvisionError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    except api.ServerError as e:
        typer.echo(f"error: LiveKit refused: {e.code}: {redact_numbers(e.message)}", err=True)
        raise typer.Exit(1) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        typer.echo(f"error: cannot reach LiveKit: {type(e).__name__}: {e}", err=True)
        raise typer.Exit(1) from None


async def _provision(spec: ProvisionSpec, password: str) -> ProvisionResult:
    settings = load_settings()
    key = load_fingerprint_key(settings)
    lk = open_livekit_api(settings)
    try:
        return await provision(lk, spec, password, fingerprint_key=key)
    finally:
        await lk.aclose()


async def _show() -> SipOverview:
    lk = open_livekit_api(load_settings())
    try:
        return await show(lk)
    finally:
        await lk.aclose()


def _overview_tables(overview: SipOverview) -> list[Table]:
    trunks = Table(title="Inbound trunks")
    for column in ("id", "name", "numbers", "allowed addresses", "auth"):
        trunks.add_column(column)
    for t in overview.trunks:
        trunks.add_row(t.sip_trunk_id, t.name, ", ".join(t.numbers),
                       ", ".join(t.allowed_addresses) or "-",
                       t.auth_username and f"{t.auth_username} / ***" or "-")
    rules = Table(title="Dispatch rules")
    for column in ("id", "name", "type", "room prefix", "trunks"):
        rules.add_column(column)
    for r in overview.rules:
        kind = r.rule.WhichOneof("rule") or "-"
        prefix = getattr(getattr(r.rule, kind), "room_prefix", "") if kind != "-" else ""
        rules.add_row(r.sip_dispatch_rule_id, r.name, kind.removeprefix("dispatch_rule_"),
                      prefix or "-", ", ".join(r.trunk_ids) or "all")
    return [trunks, rules]


def register(app: typer.Typer) -> None:
    """Add the ``sip`` command group to ``app``."""
    sip = typer.Typer(help="LiveKit SIP: inbound trunk and dispatch rule.", no_args_is_help=True)

    @sip.command("provision")
    def provision_cmd(
        file: Annotated[Path, typer.Argument(help="Provisioning YAML (see docs/telephony.md).")],
    ) -> None:
        """Create or update the inbound trunk and dispatch rule; a second run changes nothing."""
        with _user_errors():
            spec, password = load_spec(file, os.environ)
            result = asyncio.run(_provision(spec, password))
        typer.echo(f"trunk {spec.trunk.name!r}: {result.trunk_action} ({result.trunk_id})")
        typer.echo(
            f"dispatch rule {spec.dispatch_rule.name!r}: {result.rule_action} ({result.rule_id})"
        )
        if not result.changed:
            typer.echo("nothing to change")

    @sip.command("show")
    def show_cmd() -> None:
        """List inbound trunks and dispatch rules."""
        with _user_errors():
            overview = asyncio.run(_show())
        console = Console(width=140)
        for table in _overview_tables(overview):
            console.print(table)

    app.add_typer(sip, name="sip")
