"""Transport actions the receptionist's tools use: transfer to a person, DTMF; validated once
in ``CallTransport`` and carried out (or recorded) by each transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from voice_ai.pipeline.scenario import Scenario
from voice_ai.pipeline.simulated import SimulatedCaller
from voice_ai.pipeline.transport import (
    CallTransport,
    TransportActionError,
    dtmf_code,
    validate_dtmf,
)
from voice_ai.records import CallOutcome, EndReason

pytestmark = pytest.mark.unit


class _SilentVoice:
    sample_rate = 16_000

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        yield bytes(3_200)  # 100 ms


def _caller() -> SimulatedCaller:
    scenario = Scenario.model_validate(
        {"name": "t", "turns": [{"say": "I need a person"}], "reply_timeout_s": 5})
    return SimulatedCaller(scenario, _SilentVoice())


def test_dtmf_keys_are_validated_and_coded_as_rfc_4733_events() -> None:
    assert validate_dtmf(" 12#*ab ") == "12#*AB"
    assert [dtmf_code(k) for k in "09*#AD"] == [0, 9, 10, 11, 12, 15]
    with pytest.raises(TransportActionError, match="must not be empty"):
        validate_dtmf("  ")
    with pytest.raises(TransportActionError, match="at most 32"):
        validate_dtmf("1" * 33)
    with pytest.raises(TransportActionError, match=r"not DTMF keys: '\+E'"):
        validate_dtmf("1E+")


async def test_the_simulated_caller_records_a_transfer_and_the_call_ends_transferred() -> None:
    caller = _caller()
    await caller.connect()
    await caller.transfer("+44 20 7946 0000")
    reason = await asyncio.wait_for(caller.wait_ended(), 1)
    await caller.hangup()
    await caller.aclose()
    assert reason is EndReason.TRANSFERRED
    assert reason.outcome is CallOutcome.TRANSFERRED
    assert caller.transfers == ["+442079460000"]


async def test_the_simulated_caller_records_dtmf_in_order() -> None:
    caller = _caller()
    await caller.send_dtmf("1")
    await caller.send_dtmf("0#")
    assert caller.dtmf_sent == ["1", "0#"]
    with pytest.raises(TransportActionError):
        await caller.transfer("not a number")
    assert caller.transfers == []


async def test_a_transport_without_the_action_says_so() -> None:
    class _Plain(CallTransport):
        async def connect(self) -> None:
            pass

        async def _wait_ended(self) -> EndReason:
            return EndReason.CALLER_HANGUP

        async def hangup(self) -> None:
            pass

    plain = _Plain()
    with pytest.raises(TransportActionError, match="_Plain cannot transfer calls"):
        await plain.transfer("+15550100999")
    with pytest.raises(TransportActionError, match="_Plain cannot send DTMF"):
        await plain.send_dtmf("1")
