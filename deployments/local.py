"""A whole system on this machine: local Ray, the actors, the Serve app on :8000.

Used by ``voice-ai run``, the tests' end-to-end fixtures and the benchmarks.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from types import TracebackType

import ray
from ray import serve
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors.system import SystemHandles, ensure_system, teardown_system
from actors.worker_setup import RUNTIME_ENV, forward_logs
from deployments.app import bind_gateway
from deployments.ray_dispatch import CallNotFinished, wait_for_record
from voice_ai.calls.dispatch import StartResult
from voice_ai.config import Settings
from voice_ai.observability.logs import ForwardingHandler
from voice_ai.pipeline.admission import Decision
from voice_ai.pipeline.scenario import Scenario
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallRecord


def stop_log_forwarding() -> None:
    """Remove this process's log forwarding to the hub (``forward_logs``), flushing it first.
    Before ``ray.shutdown()``: a record sent after it makes Ray start a new local cluster,
    which then crashes the interpreter at exit (rc 139)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ForwardingHandler)]:
        root.removeHandler(handler)
        handler.close()


class LocalSystem:
    """Context manager: start on enter, shut everything down on exit (even on errors)."""

    def __init__(self, settings: Settings, *, dashboard: bool = False,
                 console: Console | None = None, num_cpus: int | None = None,
                 own_ray: bool = True, route_prefix: str = "/") -> None:
        self.settings = settings
        self._dashboard = dashboard
        self._console = console or Console(quiet=True)
        self._num_cpus = num_cpus
        self._own_ray = own_ray
        self._route_prefix = route_prefix
        self.app_name = settings.ray_namespace
        self.handles: SystemHandles | None = None

    def __enter__(self) -> LocalSystem:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        c = self._console
        if self._own_ray and not ray.is_initialized():
            with c.status("starting Ray"):
                ray.init(address="local", namespace=self.settings.ray_namespace,
                         runtime_env=RUNTIME_ENV,
                         include_dashboard=self._dashboard, num_cpus=self._num_cpus,
                         log_to_driver=False)
            # first, so an operator can attach (`ray status`) while the rest is loading
            c.print(f"ray cluster at {ray.get_runtime_context().gcs_address} "
                    f"(RAY_AUTH_MODE={os.environ.get('RAY_AUTH_MODE', '')})", soft_wrap=True)
        with c.status("starting Serve"):
            # before the pools: Serve gives its HTTP proxy 60 s to start and kills it after
            # that; started while the pools and call actors load (a dozen worker processes on
            # 2 cores, Ray starting two at a time) the proxy missed that on a busy machine
            serve.start(http_options={"host": self.settings.http_host,
                                      "port": self.settings.http_port})
        with c.status("starting provider pools (loading whisper, llama.cpp, piper) and "
                      f"{self.settings.warm_call_actors} warm call actors"):
            started = time.perf_counter()
            self.handles = ensure_system(self.settings)
            c.print(f"pools ready in {time.perf_counter() - started:.1f}s")
        forward_logs(self.settings.ray_namespace)  # this driver's records go to the log files too
        with c.status(f"starting the HTTP app on :{self.settings.http_port}"):
            serve.run(bind_gateway(self.settings), name=self.app_name,
                      route_prefix=self._route_prefix, blocking=False)
        from deployments.talk_routes import talk_url

        c.print(f"talk to the agent in a browser: {talk_url(self.settings)}")

    def stop(self) -> None:
        if not ray.is_initialized():
            return
        if not self._own_ray:  # a guest on someone's cluster: remove only what we started
            serve.delete(self.app_name)
            teardown_system(self.settings)
            return
        try:
            stop_log_forwarding()  # else its flush thread, finding no Ray, starts a new one
            serve.shutdown()
        finally:
            ray.shutdown()

    def run_calls(self, scenarios: Sequence[Scenario], *,
                  timeout_s: float = 600.0) -> list[CallRecord]:
        """Run one simulated call per scenario, all at once, with a live progress view. Waits
        through a dispatcher restart; a call not ended within ``timeout_s`` is reported."""
        assert self.handles is not None, "start() first"
        ns = self.settings.ray_namespace
        specs = [CallSpec(call_id=uuid.uuid4().hex[:16], scenario=s,
                          record_audio=True) for s in scenarios]
        started: list[StartResult] = ray.get(
            [self.handles.dispatcher.start_call.remote(s) for s in specs], timeout=60)
        results: list[CallRecord | None] = [None] * len(specs)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total} calls"), TimeElapsedColumn(),
                      console=self._console, transient=False) as progress:
            task = progress.add_task(f"{len(specs)} simulated calls", total=len(specs))
            accepted = [(i, spec) for i, (spec, st) in enumerate(zip(specs, started, strict=True))
                        if st.decision is Decision.ACCEPTED]
            for i, st in enumerate(started):
                if st.decision is not Decision.ACCEPTED:
                    progress.console.print(f"call {i + 1}: {st.decision.value}")
                    progress.advance(task)
            with ThreadPoolExecutor(max_workers=max(1, len(accepted))) as pool:
                futures = {pool.submit(wait_for_record, ns, spec.call_id, timeout_s): (i, spec)
                           for i, spec in accepted}
                for fut in as_completed(futures):
                    i, spec = futures[fut]
                    try:
                        r: CallRecord = fut.result()
                    except CallNotFinished as e:
                        progress.console.print(f"call {i + 1}: {e}")
                        progress.advance(task)
                        continue
                    results[i] = r
                    progress.advance(task)
                    progress.console.print(
                        f"call {i + 1} ({spec.scenario.name if spec.scenario else ''}) "
                        f"{r.outcome.value}: {len(r.turns)} turns")
        return [r for r in results if r is not None]


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_results(console: Console, records: Sequence[CallRecord]) -> None:
    """Each call's transcript, then the per-turn latency table."""
    for n, r in enumerate(records, 1):
        console.rule(f"call {n}  {r.call_id}  {r.outcome.value} ({r.end_reason.value})")
        if r.error:
            console.print(f"[red]{r.error}[/]")
        for t in r.turns:
            console.print(f"[cyan]caller (STT heard):[/] {t.user_text}")
            console.print(f"[green]agent:[/] {t.agent_text}")
        if r.recording_path:
            console.print(f"recording: {r.recording_path}")
    table = Table(title="Per-turn latency, seconds (end of caller speech -> first agent audio)")
    for col in ("call", "turn", "e2e", "stt", "end of turn", "llm ttft", "tts ttfb",
                "providers"):
        table.add_column(col, justify="right" if col not in ("providers",) else "left")
    for n, r in enumerate(records, 1):
        for t in r.turns:
            table.add_row(str(n), str(t.index + 1), _s(t.e2e_s), _s(t.stt_s),
                          _s(t.end_of_turn_s), _s(t.llm_ttft_s), _s(t.tts_ttfb_s),
                          "/".join(p for p in (t.stt_provider, t.llm_provider, t.tts_provider)))
    console.print(table)
    e2e = sorted(t.e2e_s for r in records for t in r.turns if t.e2e_s is not None)
    if e2e:
        console.print(f"response latency: avg {sum(e2e) / len(e2e):.2f}s, "
                      f"max {e2e[-1]:.2f}s over {len(e2e)} turns")
