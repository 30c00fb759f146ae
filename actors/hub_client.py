"""How every other actor reports to the telemetry hub (``actors/telemetry.py``).

Kept apart from the hub's own module so that the processes that only report (the dispatcher,
call actors) import nothing heavy for it.
"""

from __future__ import annotations

import logging
from typing import Any

import ray

from actors.names import TELEMETRY
from voice_ai.records import CallDirection, CallRecord, TurnTimings
from voice_ai.store.outcome import StoreProblem

__all__ = ["RayTelemetry"]

logger = logging.getLogger("voice_ai.telemetry")


class RayTelemetry:
    """``TelemetrySink`` over the hub (looked up by name; it may be restarting)."""

    def __init__(self, namespace: str) -> None:
        self._ns = namespace
        self._handle: Any = None
        try:  # at construction, off any call's path
            self._handle = ray.get_actor(TELEMETRY, namespace=namespace)
        except ValueError:  # not started yet: looked up on first use
            pass

    def _hub(self) -> Any:
        # looked up once and kept: the hub restarts under the same handle, and a lookup asks
        # the GCS and blocks the caller's event loop (seconds on a loaded machine)
        if self._handle is None:
            self._handle = ray.get_actor(TELEMETRY, namespace=self._ns)
        return self._handle

    def call_started(self, call_id: str, direction: CallDirection, caller_masked: str,
                     node: str) -> None:
        self._fire("call_started", call_id, direction.value, caller_masked, node)

    def call_rejected(self, call_id: str, direction: CallDirection, caller_masked: str) -> None:
        self._fire("call_rejected", call_id, direction.value, caller_masked)

    def turn(self, call_id: str, turn: TurnTimings) -> None:
        self._fire("turn", call_id, turn)

    async def call_ended(self, record: CallRecord) -> None:
        await self._hub().call_ended.remote(record)

    def _fire(self, method: str, *args: object) -> None:
        try:
            getattr(self._hub(), method).remote(*args)
        except Exception as e:  # the hub reconciles its gauges when it is back
            logger.warning("telemetry event lost", extra={"event": method,
                                                           "error": type(e).__name__})

    def spool_observer(self, node: str) -> _SpoolToHub:
        return _SpoolToHub(self, node[:12])


class _SpoolToHub:
    def __init__(self, telemetry: RayTelemetry, node: str) -> None:
        self._telemetry = telemetry
        self._node = node

    def spooled(self, pending: int, problem: StoreProblem) -> None:
        self._telemetry._fire("spool_changed", self._node, pending, 1, 0, problem.value)

    def replayed(self, replayed: int, pending: int) -> None:
        self._telemetry._fire("spool_changed", self._node, pending, 0, replayed, "")
