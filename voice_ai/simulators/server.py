"""The loopback HTTP/WebSocket server the three provider simulators share.

A simulator counts what it receives, applies the current ``Fault`` before answering and paces
its answer with a ``LatencyProfile``. ``Fault.REFUSE`` really stops listening (the port is
re-opened when the fault is cleared) and cuts kept-alive connections.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from abc import ABC, abstractmethod

from aiohttp import web

from voice_ai.simulators.faults import HTTP_FAULT_STATUS, Fault
from voice_ai.simulators.profile import LatencyProfile

__all__ = ["SimulatorServer"]

_ERROR_TEXT = {500: "internal server error", 429: "rate limit exceeded", 401: "invalid api key"}


class SimulatorServer(ABC):
    """Base of the provider simulators: lifecycle, faults, counters."""

    name = "simulator"

    def __init__(
        self,
        latency: LatencyProfile | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        slow_delay_s: float = 2.0,
    ) -> None:
        self.latency = latency or LatencyProfile()
        self.host = host
        self.port = port
        self.slow_delay_s = slow_delay_s
        self.requests = 0
        """Requests (HTTP requests or WebSocket sessions) that reached the handler."""
        self.faulted = 0
        """Of those, how many were answered with a fault (error status, hang, drop)."""
        self.peers: set[tuple[str, int]] = set()
        """Client (address, port) pairs seen: one per TCP connection the clients opened."""
        self.lateness_s: list[float] = []
        """How much later than its model of time each paced answer left (``pace``): the
        simulator's event loop was busy. Benchmarks read it to know their yardstick held."""
        self._fault = Fault.NONE
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._closing = asyncio.Event()

    @property
    def fault(self) -> Fault:
        return self._fault

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        if self.port == 0:
            self.port = _free_port(self.host)
        await self._listen()

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = self._site = None

    async def set_fault(self, fault: Fault | str) -> None:
        """Switch the fault now; requests already being answered keep their fault."""
        fault = Fault(fault)
        if fault is Fault.REFUSE and self._site is not None:
            await self._site.stop()
            self._site = None
        self._fault = fault
        if fault is not Fault.REFUSE and self._site is None and self._runner is not None:
            await self._listen()

    @abstractmethod
    def add_routes(self, app: web.Application) -> None: ...

    # --- helpers for handlers -----------------------------------------------------------------
    async def admit(
        self, request: web.Request, *, hang_here: bool = True
    ) -> web.StreamResponse | None:
        """Count a request and apply a fault that strikes before any answer.

        Returns the response to send instead of a normal answer, or None to go on. With
        ``hang_here=False`` a hang is left to the handler (a WebSocket accepts, then is silent).
        """
        self.requests += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add((str(peer[0]), int(peer[1])))
        fault = self._fault
        if fault is Fault.REFUSE:  # a kept-alive connection: cut it
            self.faulted += 1
            _abort(request)
            raise web.HTTPServiceUnavailable()
        if fault in HTTP_FAULT_STATUS:
            self.faulted += 1
            status = HTTP_FAULT_STATUS[fault]
            body = {"error": {"message": _ERROR_TEXT[status], "type": fault.value, "code": status}}
            return web.Response(
                status=status, text=json.dumps(body), content_type="application/json"
            )
        if fault is Fault.HANG:
            self.faulted += 1
            if not hang_here:
                return None
            await self.hang()
            _abort(request)
            raise web.HTTPServiceUnavailable()
        if fault is Fault.DROP_MID_STREAM:
            self.faulted += 1
        return None

    async def hang(self) -> None:
        """Wait until the simulator stops (a hung provider answers nothing)."""
        await self._closing.wait()

    def hangs(self) -> bool:
        return self._fault is Fault.HANG

    def drops_mid_stream(self) -> bool:
        return self._fault is Fault.DROP_MID_STREAM

    async def pace(self, delay_s: float) -> None:
        """Wait ``delay_s`` (the model's delay), recording how late the wait ended."""
        await self.pace_until(time.monotonic() + delay_s)

    async def pace_until(self, at: float) -> None:
        """Wait until ``time.monotonic()`` is ``at``, recording how late the wait ended."""
        wait = at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.lateness_s.append(max(0.0, time.monotonic() - at))

    def first_delay_s(self) -> float:
        extra = self.slow_delay_s if self._fault is Fault.SLOW else 0.0
        return self.latency.first_delay_s() + extra

    def drop(self, request: web.Request) -> None:
        """Cut the TCP connection under a response already started."""
        _abort(request)

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
