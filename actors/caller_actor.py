"""CallerHost: simulated callers live here, outside the call actors, as phone callers do.

A Ray shell over ``voice_ai.pipeline.line_exchange.LineExchange``. The cluster runs
CALLER_HOSTS of them (named ``caller-host-<i>``, detached, started by ``ensure_system``); a call
actor dials the caller of a simulated call through ``RayCallerLines`` and reaches it over a
socket, so the call actor's CPU and memory are what production pays, and a call actor that dies
leaves its caller on the line for a new one to reconnect to (dialling the same call id gives
the same line).
The callers speak with the Piper pool, as the call actors' callers did.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import ray
from ray.actor import ActorHandle

from actors.names import CALLER_HOST_PREFIX
from actors.pool_client import RayPoolPort
from actors.pool_layout import pool_size
from actors.worker_setup import forward_logs
from voice_ai.calls.deadline import within
from voice_ai.config import Settings
from voice_ai.pipeline.line import CallerOrder, LineAddress
from voice_ai.pipeline.line_exchange import CallerLineInfo, LineExchange, LineStatus
from voice_ai.providers.pool import ProviderPool
from voice_ai.providers.pooled import PooledTTS

__all__ = ["CallerHost", "RayCallerLines", "caller_host_name", "caller_host_of",
           "start_caller_hosts"]


def caller_host_name(index: int) -> str:
    return f"{CALLER_HOST_PREFIX}{index}"


def caller_host_of(call_id: str, settings: Settings) -> int:
    """The index of the caller host that keeps ``call_id``'s caller: always the same one, so
    a call actor that takes a call over finds its caller."""
    return zlib.crc32(call_id.encode()) % settings.caller_hosts


@ray.remote(max_restarts=-1, max_task_retries=0)
class CallerHost:
    def __init__(self, settings: Settings) -> None:
        forward_logs(settings.ray_namespace)
        self._settings = settings
        self._exchange: LineExchange | None = None
        self._starting = asyncio.Lock()

    async def _ready(self) -> LineExchange:
        async with self._starting:
            if self._exchange is None:
                s = self._settings
                piper = await PooledTTS.connect(ProviderPool(RayPoolPort.named(
                    "tts", "piper", pool_size(s, "tts", "piper"), s.ray_namespace)))
                self._exchange = await LineExchange(
                    piper, host=s.caller_line_host, advertise_host=_advertised(s),
                    recordings_dir=s.recordings_dir,
                    orphan_timeout_s=s.caller_orphan_timeout_s).start()
            return self._exchange

    async def dial(self, order: CallerOrder) -> LineAddress:
        """The line of ``order.call_id``'s caller (a new caller, or the one already on it)."""
        return await (await self._ready()).dial(order)

    async def status(self) -> LineStatus:
        return (await self._ready()).status()

    async def line_info(self, call_id: str) -> CallerLineInfo | None:
        return (await self._ready()).line_info(call_id)


def _advertised(settings: Settings) -> str | None:
    """A wildcard listener is reached at this node's address."""
    if settings.caller_line_host in ("0.0.0.0", "::"):
        return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]  # untyped
    return None


class RayCallerLines:
    """``CallerLines`` over the caller host actors: a call id always maps to the same host,
    so a call actor that takes over a call dials the host its caller is on."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._handles: dict[int, ActorHandle[Any]] = {}

    async def dial(self, order: CallerOrder) -> LineAddress:
        index = caller_host_of(order.call_id, self._settings)
        handle = self._handles.get(index)
        if handle is None:  # a GCS lookup blocks: off the event loop
            handle = await asyncio.to_thread(ray.get_actor, caller_host_name(index),
                                             namespace=self._settings.ray_namespace)
            self._handles[index] = handle
        address: LineAddress = await within(handle.dial.remote(order),
                                            self._settings.call_begin_timeout_s,
                                            f"caller host {index}")
        return address


def start_caller_hosts(settings: Settings, **options: Any) -> list[ActorHandle[Any]]:
    """The caller hosts of this system (created if missing); they take no CPU reservation:
    a test harness, not a production component."""
    return [CallerHost.options(  # type: ignore[attr-defined]
        name=caller_host_name(i), namespace=settings.ray_namespace, lifetime="detached",
        get_if_exists=True, num_cpus=0, max_concurrency=1000, **options).remote(settings)
        for i in range(settings.caller_hosts)]
