"""Operator commands against a running cluster (docs/RUNBOOK.md): ``voice-ai pool status``,
``voice-ai pool restart STAGE``, ``voice-ai call test``, ``voice-ai store stop``,
``voice-ai drain NODE``.

They attach to the cluster of ``RAY_ADDRESS`` (or the one started on this machine by
``ray start``), never start a new one, and only use the system's named actors.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from voice_ai.cli.app import app, fail

pool_app = typer.Typer(help="Provider pools (STT/LLM/TTS workers) of the running cluster.",
                       no_args_is_help=True)
call_app = typer.Typer(help="Calls on the running cluster.", no_args_is_help=True)
store_app = typer.Typer(help="The store writer of the running cluster.", no_args_is_help=True)
app.add_typer(pool_app, name="pool")
app.add_typer(call_app, name="call")
app.add_typer(store_app, name="store")
console = Console()
STAGES = ("stt", "llm", "tts")


def _namespace(settings: Any) -> str:
    from actors.names import NAMESPACE

    return str(getattr(settings, "ray_namespace", NAMESPACE))


@contextmanager
def _attached() -> Iterator[None]:
    """Attach to the running cluster; one line and exit 2 when there is none."""
    import ray

    try:
        ray.init(address="auto", log_to_driver=False,
                 logging_level="ERROR")
    except (ConnectionError, RuntimeError) as e:
        raise fail(f"no running Ray cluster to attach to (set RAY_ADDRESS): {e}", code=2) from None
    try:
        yield
    finally:
        ray.shutdown()


def _settings() -> Any:
    from deployments.cli import _settings_or_exit

    return _settings_or_exit()


def _info(name: str, namespace: str, timeout_s: float = 5.0) -> dict[str, Any] | None:
    import ray

    try:
        handle = ray.get_actor(name, namespace=namespace)
        info: dict[str, Any] = ray.get(handle.info.remote(), timeout=timeout_s)
        return info
    except Exception:
        return None


@pool_app.command("status")
def pool_status() -> None:
    """Every pool worker: node, device, pid, requests in flight. Exit 1 if one is down."""
    from actors.pool_layout import pool_layout

    settings = _settings()
    table = Table(title="provider pools")
    for col in ("worker", "node", "device", "pid", "in flight", "served"):
        table.add_column(col)
    down = 0
    with _attached():
        for pools in pool_layout(settings).values():
            for pool in pools:
                for name in pool.names:
                    info = _info(name, _namespace(settings))
                    if info is None:
                        down += 1
                        table.add_row(name, "-", "-", "-", "DOWN", "-")
                        continue
                    table.add_row(name, info["node_id"][:12], str(info.get("device") or "-"),
                                  str(info["pid"]), str(info["in_flight"]), str(info["served"]))
    console.print(table)
    if down:
        raise fail(f"{down} pool worker(s) not answering")


@pool_app.command("restart")
def pool_restart(
    stage: Annotated[str, typer.Argument(help="stt, llm or tts")],
    provider: Annotated[str | None, typer.Option(
        help="Only this provider's pool (e.g. whisper); default: every pool of the stage.")] = None,
    timeout_s: Annotated[float, typer.Option(help="Wait per worker.")] = 180.0,
) -> None:
    """Rolling restart: one worker at a time, each back (new process) before the next."""
    import ray

    from actors.pool_layout import pool_layout

    if stage not in STAGES:
        raise fail(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}", code=2)
    settings = _settings()
    pools = [p for p in pool_layout(settings)[stage] if provider in (None, p.provider)]
    if not pools:
        raise fail(f"no {stage} pool with provider {provider!r}", code=2)
    with _attached():
        for pool in pools:
            for name in pool.names:
                ns = _namespace(settings)
                before = _info(name, ns)
                if before is None:
                    raise fail(f"{name} is not answering; see `voice-ai pool status`")
                ray.kill(ray.get_actor(name, namespace=ns), no_restart=False)
                deadline = time.time() + timeout_s
                while (after := _info(name, ns)) is None or after["pid"] == before["pid"]:
                    if time.time() > deadline:
                        raise fail(f"{name} did not come back within {timeout_s:.0f}s")
                    time.sleep(0.5)
                console.print(f"{name} restarted: pid {before['pid']} -> {after['pid']} "
                              f"on node {after['node_id'][:12]}")


@call_app.command("test")
def call_test(
    scenario: Annotated[Path, typer.Option(help="Scenario YAML the simulated caller speaks.")]
    = Path("scenarios/book_appointment.yaml"),
    timeout_s: Annotated[float, typer.Option(help="Give up after this long.")] = 300.0,
) -> None:
    """Place one simulated call through the dispatcher; exit 1 unless it completes. Never
    hangs: one line and exit 1 if the call has not ended within --timeout-s."""
    import ray

    from actors.names import DISPATCHER
    from deployments.ray_dispatch import CallNotFinished, wait_for_record
    from voice_ai.calls.dispatch import StartResult
    from voice_ai.errors import ScenarioError
    from voice_ai.pipeline.admission import Decision
    from voice_ai.pipeline.scenario import load_scenario
    from voice_ai.pipeline.specs import CallSpec
    from voice_ai.records import CallRecord

    try:
        spec = CallSpec(call_id=uuid.uuid4().hex[:16], scenario=load_scenario(scenario))
    except ScenarioError as e:
        raise fail(str(e), code=2) from None
    namespace = _namespace(_settings())
    with _attached():
        try:
            dispatcher = ray.get_actor(DISPATCHER, namespace=namespace)
            started: StartResult = ray.get(  # type: ignore[assignment]  # handle is untyped
                dispatcher.start_call.remote(spec), timeout=min(30.0, timeout_s))
        except (ValueError, ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError) as e:
            raise fail(f"the call dispatcher is not answering ({type(e).__name__}); see "
                       "`voice-ai pool status` and the errors log") from None
        if started.decision is not Decision.ACCEPTED:
            raise fail(f"call {spec.call_id} {started.decision.value} "
                       "(MAX_CONCURRENT_CALLS reached?)")
        try:
            result = wait_for_record(namespace, spec.call_id, timeout_s)
        except CallNotFinished as e:
            raise fail(str(e)) from None
    assert isinstance(result, CallRecord)
    console.print(f"call {result.call_id} {result.outcome.value} ({result.end_reason.value}), "
                  f"{len(result.turns)} turns")
    for t in result.turns:
        console.print(f"  caller: {t.user_text}\n  agent: {t.agent_text}  (e2e "
                      f"{t.e2e_s if t.e2e_s is None else round(t.e2e_s, 2)}s)")
    if result.outcome.value != "completed":
        raise fail(f"call {result.call_id} {result.outcome.value}: {result.error}")


@store_app.command("stop")
def store_stop(
    timeout_s: Annotated[float, typer.Option(help="Wait this long for it to let go.")] = 30.0,
) -> None:
    """Stop the store writer (before `voice-ai restore`). Records of calls that end meanwhile
    wait in the spool; `serve deploy` (or `voice-ai run`) starts the writer again."""
    import ray

    from actors.store_writer import WRITER_NAME
    from voice_ai.store.call_store import exclusive_store_lock
    from voice_ai.store.errors import WriterRunningError

    settings = _settings()
    with _attached():
        try:
            writer = ray.get_actor(WRITER_NAME, namespace=_namespace(settings))
        except ValueError:
            console.print("the store writer is not running")
            return
        ray.kill(writer, no_restart=True)
    deadline = time.time() + timeout_s
    while True:  # its process lets go of the database when it exits
        try:
            os.close(exclusive_store_lock(settings.db_path.resolve()))
            break
        except WriterRunningError:
            if time.time() > deadline:
                raise fail(f"the store writer still holds {settings.db_path} after "
                           f"{timeout_s:.0f} s") from None
            time.sleep(0.2)
    console.print(f"store writer stopped; {settings.db_path} is free for `voice-ai restore`")


_NODE_ID = re.compile(r"[0-9a-f]+")


def resolve_node(query: str, alive: list[str]) -> str:
    """The one live node whose id starts with ``query`` (a Ray node id, hex, or a unique
    prefix of one); ``ValueError`` naming the problem otherwise."""
    wanted = query.strip().lower()
    if not _NODE_ID.fullmatch(wanted):
        raise ValueError(f"{query!r} is not a node id: hex digits, as `ray list nodes` and "
                         "/health/detailed show them")
    matches = [n for n in alive if n.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    live = ", ".join(n[:12] for n in alive) or "none"
    if not matches:
        raise ValueError(f"no live node's id starts with {query!r} (live nodes: {live})")
    raise ValueError(f"{query!r} matches {len(matches)} live nodes; give more of its id "
                     f"(live nodes: {live})")


@app.command("drain")
def drain(
    node: Annotated[str, typer.Argument(help="Node id, or a unique prefix of it (`ray list "
                                             "nodes`, /health/detailed).")],
    wait_s: Annotated[float, typer.Option("--wait", help="Wait this long (s) for its calls "
                                                         "to move.")] = 120.0,
    undo: Annotated[bool, typer.Option("--undo", help="Let new calls go to the node again.")]
    = False,
) -> None:
    """Stop new calls on NODE and move its live calls to other nodes, each at its next turn
    boundary once a call actor elsewhere is ready for it (a deploy or node upgrade drops no
    call; docs/RUNBOOK.md). Exit 0: no call left on the node; 1: calls still on it after
    --wait; 2: not a live node id."""
    import ray

    from actors.names import DISPATCHER
    from voice_ai.calls.dispatch import DrainReport

    try:  # a malformed id costs one line before anything attaches
        resolve_node(node, [node.strip().lower()])
    except ValueError as e:
        raise fail(str(e), code=2) from None
    namespace = _namespace(_settings())
    with _attached():
        alive = [str(n["NodeID"]) for n in ray.nodes()  # type: ignore[no-untyped-call]
                 if n.get("Alive")]
        try:
            node_id = resolve_node(node, alive)
        except ValueError as e:
            raise fail(str(e), code=2) from None
        short = node_id[:12]
        try:
            dispatcher = ray.get_actor(DISPATCHER, namespace=namespace)
            if undo:
                ray.get(dispatcher.undrain_node.remote(node_id), timeout=30)
                console.print(f"node {short}: new calls may go to it again")
                return
            report: DrainReport = ray.get(  # type: ignore[assignment]  # handle is untyped
                dispatcher.drain_node.remote(node_id), timeout=60)
        except ray.exceptions.RayTaskError as e:  # e.g. RESUME_CALLS=false
            raise fail(f"the dispatcher refused: {e.cause}") from None
        except (ValueError, ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError) as e:
            raise fail(f"the call dispatcher is not answering ({type(e).__name__}); see "
                       "`voice-ai pool status` and the errors log") from None
        console.print(f"node {short} draining: no new calls; {report.spares_retired} idle call "
                      f"actors stopped; {len(report.handing_over)} calls to hand over")
        deadline = time.monotonic() + wait_s
        left = report.calls_left
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            now: DrainReport = ray.get(dispatcher.drain_status.remote(node_id), timeout=30)
            if len(now.calls_left) != len(left):
                console.print(f"  {len(left) - len(now.calls_left)} moved, "
                              f"{len(now.calls_left)} left")
            left = now.calls_left
        if left:
            raise fail(f"{len(left)} calls still on node {short} after {wait_s:g} s (each "
                       "moves at its next turn boundary; run the command again to follow)")
        console.print(f"node {short}: no calls left, and it takes no new ones "
                      f"(`voice-ai drain --undo {short}` lets them back)")
