"""Transport actions the receptionist's tools use: transfer to a person, DTMF; validated once
in ``CallTransport`` and carried out (or recorded) by each transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from livekit.agents import tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from voice_ai.audio import rms
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


async def test_end_call_hangs_up_from_the_agents_side_mid_call() -> None:
    caller = _caller()
    await caller.connect()
    ending = asyncio.ensure_future(caller.wait_ended())
    await asyncio.sleep(0.05)
    assert not ending.done()  # the caller is still waiting for the greeting
    await caller.end_call()  # the agent said goodbye
    assert await asyncio.wait_for(ending, 1) is EndReason.AGENT_HANGUP
    await caller.hangup()
    await caller.aclose()


async def test_hanging_up_before_the_script_is_done_is_an_agent_hangup() -> None:
    caller = _caller()
    await caller.connect()
    await caller.hangup()
    assert await asyncio.wait_for(caller.wait_ended(), 1) is EndReason.AGENT_HANGUP


class _ToneTTS(tts.TTS[Any]):
    """A livekit TTS that says every text as 0.3 s of tone at 22.05 kHz (Piper's rate)."""

    def __init__(self) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False),
                         sample_rate=22_050, num_channels=1)

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
                   ) -> tts.ChunkedStream:
        return _ToneStream(tts=self, input_text=text, conn_options=conn_options)


class _ToneStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        t = np.arange(int(22_050 * 0.3)) / 22_050
        pcm = (np.sin(2 * np.pi * 300 * t) * 8_000).astype(np.int16).tobytes()
        output_emitter.initialize(request_id="r", sample_rate=22_050, num_channels=1,
                                  mime_type="audio/pcm")
        output_emitter.push(pcm)
        output_emitter.flush()


async def test_the_simulated_caller_speaks_with_a_livekit_tts_too() -> None:
    caller = SimulatedCaller(_caller().scenario, _ToneTTS())
    await caller.prepare()
    frames = caller._lines[0]
    assert len(frames) in (15, 16)  # 0.3 s in 20 ms frames at 16 kHz (+ the padded tail)
    assert all(len(f) == 640 for f in frames)
    assert max(rms(f) for f in frames) > 4_000
