"""A call actor between calls (``CallHost.reset``): what the ended call allocated is released,
and the freed heap goes back to the OS (``voice_ai.calls.memory``); the soak in
docs/resilience.md is what this is for."""

from __future__ import annotations

import asyncio
import ctypes.util
import gc
import platform
import weakref

import pytest

from tests.fakes.calls import FakeRecords, FakeTelemetry
from voice_ai.calls.host import CallHost
from voice_ai.calls.memory import release_freed_memory
from voice_ai.calls.ports import CallTicket
from voice_ai.pipeline.specs import CallSpec
from voice_ai.records import CallDirection, CallRecord, EndReason

pytestmark = pytest.mark.unit


class _Session:
    """Stands for an ``AgentSession``: it and its streams point at each other (a cycle that
    only the garbage collector frees) and hold the call's audio."""

    def __init__(self) -> None:
        self.audio = bytearray(4 * 2**20)
        self.stream = {"session": self}


class _Runner:
    def __init__(self) -> None:
        self.sessions: list[weakref.ref[_Session]] = []

    async def run_call(self, spec: CallSpec) -> CallRecord:
        session = _Session()
        self.sessions.append(weakref.ref(session))
        await asyncio.sleep(0)
        return CallRecord(call_id=spec.call_id, direction=CallDirection.INBOUND, started_at=1.0,
                          ended_at=2.0, end_reason=EndReason.CALLER_HANGUP)


async def _one_call(host: CallHost, runner: _Runner, call_id: str) -> None:
    host.begin(CallTicket(CallSpec(call_id=call_id, room=call_id), key=call_id), runner)
    await host.wait_end(call_id)
    host.reset()
    await asyncio.sleep(0)  # the release runs once reset has answered


async def test_reset_releases_the_ended_calls_objects_and_trims_the_heap() -> None:
    trims: list[int] = []
    host = CallHost("callactor-t", "node", 1, FakeRecords(), FakeTelemetry(),
                    release_memory=lambda: trims.append(1))
    runner = _Runner()
    gc.disable()  # only the reset's collection may free the cycle
    try:
        await _one_call(host, runner, "c1")
        assert runner.sessions[0]() is None  # the call's session is gone, not kept
        assert trims == [1]
        await _one_call(host, runner, "c2")
        assert runner.sessions[1]() is None and trims == [1, 1]  # after every call
    finally:
        gc.enable()


async def test_no_release_once_the_next_call_has_begun() -> None:
    trims: list[int] = []
    host = CallHost("callactor-t", "node", 1, FakeRecords(), FakeTelemetry(),
                    release_memory=lambda: trims.append(1))
    runner = _Runner()
    host.begin(CallTicket(CallSpec(call_id="c1", room="c1"), key="c1"), runner)
    await host.wait_end("c1")
    host.reset()
    host.begin(CallTicket(CallSpec(call_id="c2", room="c2"), key="c2"), runner)  # at once
    await asyncio.sleep(0)
    assert trims == []  # a collection must not stall the call that just began
    await host.wait_end("c2")


@pytest.mark.skipif(platform.system() != "Linux" or not ctypes.util.find_library("c"),
                    reason="malloc_trim is glibc's")
def test_release_freed_memory_calls_glibc() -> None:
    assert isinstance(release_freed_memory(), bool)  # answers, never raises
