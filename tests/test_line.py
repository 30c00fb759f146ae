"""The phone line between a simulated caller (on a caller host) and a call: what the caller
says arrives at the call in real time, the agent's audio reaches the caller, the caller's own
timing marks come back, and the caller stays on the line when a call leg dies, so a new leg
carries the call on. No Ray: a ``LineExchange`` on loopback and a scripted agent."""

from __future__ import annotations

import asyncio
import dataclasses
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from voice_ai.audio import rms
from voice_ai.pipeline.line import CallerOrder, LineAddress, LineTransport
from voice_ai.pipeline.line_exchange import LineExchange
from voice_ai.pipeline.line_wire import Leg as _Leg
from voice_ai.pipeline.line_wire import LineError
from voice_ai.pipeline.scenario import Scenario
from voice_ai.records import EndReason

pytestmark = pytest.mark.unit

LINES = ("first line", "second line", "third line")


class _ToneVoice:
    """Each line is 0.2 s of a loud tone: speech to anyone listening for it."""

    sample_rate = 16_000

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        t = np.arange(int(self.sample_rate * 0.2)) / self.sample_rate
        yield (np.sin(2 * np.pi * 220 * t) * 8_000).astype(np.int16).tobytes()


def _scenario(lines: tuple[str, ...] = LINES, reply_timeout_s: float = 3) -> Scenario:
    return Scenario.model_validate({
        "name": "line", "reply_timeout_s": reply_timeout_s, "wait_for_greeting": True,
        "turns": [{"say": s, "pause_before_s": 0.1} for s in lines]})


async def _agent_says(transport: LineTransport, seconds: float = 0.2) -> None:
    """A reply as a session would play it: 10 ms frames at 24 kHz, then flush."""
    frame = np.full(240, 4_000, dtype=np.int16).tobytes()
    for _ in range(round(seconds / 0.01)):
        await transport.audio_output.capture_frame(rtc.AudioFrame(frame, 24_000, 1, 240))
    transport.audio_output.flush()


class _Listener:
    """Reads the call's audio input as the session would, keeping the loud frames."""

    def __init__(self, transport: LineTransport) -> None:
        self.loud = 0
        self.frames = 0
        self._task = asyncio.create_task(self._listen(transport))

    async def _listen(self, transport: LineTransport) -> None:
        async for frame in transport.audio_input:
            assert frame.sample_rate == 16_000 and frame.samples_per_channel == 320
            self.frames += 1
            self.loud += rms(bytes(frame.data.cast("B"))) > 1_000

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _answer_lines(transport: LineTransport, answered: int, upto: int) -> int:
    """Reply 0.1 s after each caller line the call's marks show ended, up to ``upto`` lines."""
    while answered < upto:
        marks = transport.speech_marks()
        if len(marks) > answered:
            await asyncio.sleep(0.1)
            await _agent_says(transport)
            answered += 1
        await asyncio.sleep(0.01)
    return answered


async def _open(address: LineAddress) -> LineTransport:
    transport = LineTransport(address)
    await transport.connect()
    return transport


@pytest.fixture
async def exchange(tmp_path: Path) -> AsyncIterator[LineExchange]:
    ex = await LineExchange(_ToneVoice(), recordings_dir=tmp_path, orphan_timeout_s=5).start()
    yield ex
    await ex.aclose()


async def test_a_call_over_the_line_hears_the_caller_and_gets_the_callers_marks(
        exchange: LineExchange) -> None:
    address = await exchange.dial(CallerOrder("c1", _scenario(), caller_masked="+1555***99"))
    transport = await _open(address)
    listener = _Listener(transport)
    await _agent_says(transport)  # the greeting
    await _answer_lines(transport, 0, len(LINES))
    reason = await asyncio.wait_for(transport.wait_ended(), 10)
    await transport.hangup()
    await transport.aclose()
    await listener.stop()

    assert reason is EndReason.CALLER_HANGUP
    assert transport.caller_masked == "+1555***99"
    assert transport.unanswered == []
    marks = transport.speech_marks()
    assert [m.text for m in marks] == list(LINES)
    # the caller's own measure: it stopped speaking, then heard the reply ~0.1 s later
    for mark in marks:
        assert mark.response_latency_s is not None
        assert 0.08 <= mark.response_latency_s <= 0.4, mark
    # three lines of 0.2 s: ~10 loud frames each arrived at the call
    assert 27 <= listener.loud <= 33
    caller = exchange.caller("c1")
    assert caller.speech_marks() == marks
    # the recording is the caller's, saved on its host: caller left, agent right
    with wave.open(transport.recording_path) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 16_000)
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, 2)
    assert np.abs(stereo[:, 0]).max() > 4_000 and np.abs(stereo[:, 1]).max() > 2_000


async def test_the_caller_stays_on_the_line_when_the_call_leg_dies_and_a_new_leg_goes_on(
        exchange: LineExchange) -> None:
    order = CallerOrder("c2", _scenario())
    address = await exchange.dial(order)
    first = await _open(address)
    await _agent_says(first)
    await _answer_lines(first, 0, 1)
    await first.aclose()  # the call actor died: no hangup, the socket just closes

    assert await exchange.dial(order) == address  # dialling again finds the same caller
    second = await _open(address)
    listener = _Listener(second)
    assert [m.text for m in second.speech_marks()][:1] == [LINES[0]]  # the history came along
    await _answer_lines(second, 1, len(LINES))
    reason = await asyncio.wait_for(second.wait_ended(), 10)
    await second.aclose()
    await listener.stop()

    assert reason is EndReason.CALLER_HANGUP
    assert second.unanswered == []
    assert [m.text for m in second.speech_marks()] == list(LINES)
    assert listener.loud >= 18  # lines 2 and 3 reached the new leg
    status = exchange.status()
    assert (status.dialled_total, status.reconnects_total) == (1, 1)


@pytest.mark.parametrize("standby", [True, False], ids=["make-before-break", "break-first"])
async def test_a_reply_cut_by_its_leg_leaving_ends_and_the_caller_speaks_on(
        exchange: LineExchange, standby: bool) -> None:
    # the leg carrying a reply leaves before the reply's end (a call actor died mid-sentence,
    # or a hand-over took the wrong moment): the caller hears the voice stop, as on a phone,
    # and says its next line to the next leg, instead of waiting for an end that never comes
    # (a drained call in the multinode suite fell silent for 60 s that way, once per suite)
    call_id = f"c12-{standby}"
    address = await exchange.dial(CallerOrder(call_id, _scenario(reply_timeout_s=60)))
    first = await _open(address)
    await _agent_says(first)  # the greeting
    await _answer_lines(first, 0, 1)
    nxt = LineTransport(address, standby=standby)
    if standby:
        await nxt.prepare()
    for _ in range(500):  # line 2 said
        if len(first.speech_marks()) >= 2:
            break
        await asyncio.sleep(0.01)
    frame = np.full(240, 4_000, dtype=np.int16).tobytes()
    for _ in range(20):  # 0.2 s of the answer to line 2, and no flush: its leg leaves
        await first.audio_output.capture_frame(rtc.AudioFrame(frame, 24_000, 1, 240))
    await first.aclose()
    await nxt.connect()
    await _answer_lines(nxt, 2, len(LINES))
    reason = await asyncio.wait_for(nxt.wait_ended(), 10)
    await nxt.aclose()

    assert reason is EndReason.CALLER_HANGUP and nxt.unanswered == []
    assert [m.text for m in nxt.speech_marks()] == list(LINES)
    info = exchange.line_info(call_id)
    assert info is not None and info.replies_cut == 1
    assert exchange.status().replies_cut_total == 1


async def test_a_new_leg_is_welcomed_first_while_the_old_one_is_still_closing(
        exchange: LineExchange, monkeypatch: pytest.MonkeyPatch) -> None:
    # a takeover (resume, drain) while the old leg is slow to close, as under load: the caller's
    # audio, flowing all the while, must not reach the new leg ahead of its WELCOME
    real_close = _Leg.close

    async def slow_close(leg: _Leg) -> None:
        await asyncio.sleep(0.15)
        await real_close(leg)

    monkeypatch.setattr(_Leg, "close", slow_close)
    address = await exchange.dial(CallerOrder("c9", _scenario()))
    legs = [await _open(address)]
    await _agent_says(legs[0])  # the caller starts its lines: frames flow down the line
    for _ in range(3):
        await asyncio.sleep(0.05)
        legs.append(await _open(address))  # raised "refused" when a frame came first
    info = exchange.line_info("c9")
    assert info is not None and info.live and info.legs_total == 4
    for leg in legs:
        await leg.aclose()


@pytest.mark.parametrize("standby", [True, False], ids=["make-before-break", "break-first"])
async def test_a_leg_standing_by_hears_what_the_caller_says_in_the_hand_over_gap(
        exchange: LineExchange, standby: bool) -> None:
    # a drain: the old leg leaves at a turn boundary and the caller's next line comes while
    # the next call actor is still restoring the call (not listening yet). A leg that stood
    # by since before the hand-over gets that line whole; one that joins after the gap (break
    # first, as a resume after a crash must) has lost it, as a phone line would
    call_id = f"c10-{standby}"
    address = await exchange.dial(CallerOrder(call_id, _scenario()))
    first = await _open(address)
    await _agent_says(first)
    nxt = LineTransport(address, standby=standby)
    if standby:
        await nxt.prepare()  # joins while the first leg carries the call
        info = exchange.line_info(call_id)
        assert info is not None and info.standing_by and info.legs_total == 1
    await _answer_lines(first, 0, 1)  # line 1 is heard and answered by the first leg
    await first.aclose()  # handed over: the caller speaks line 2 in ~0.3 s
    await asyncio.sleep(0.7)  # the next call restores the call; line 2 is spoken meanwhile
    await nxt.connect()
    listener = _Listener(nxt)  # it listens only now
    info = exchange.line_info(call_id)
    assert info is not None and info.leg_connected and not info.standing_by
    await _answer_lines(nxt, 1, len(LINES))
    reason = await asyncio.wait_for(nxt.wait_ended(), 10)
    await nxt.aclose()
    await listener.stop()

    assert reason is EndReason.CALLER_HANGUP and nxt.unanswered == []
    assert [m.text for m in nxt.speech_marks()] == list(LINES)
    if standby:  # lines 2 and 3 (~10 loud frames each), and none of line 1 twice
        assert 18 <= listener.loud <= 22, listener.loud
    else:  # line 3 only
        assert 8 <= listener.loud <= 12, listener.loud
    assert exchange.line_info(call_id).legs_total == 2  # type: ignore[union-attr]


async def test_a_leg_standing_by_is_told_when_the_caller_hangs_up_first(
        exchange: LineExchange) -> None:
    # the call ends before it hands over (the caller said goodbye): the leg standing by
    # learns the end, and never carried the call
    address = await exchange.dial(CallerOrder("c11", _scenario(("only line",))))
    first = await _open(address)
    await _agent_says(first)
    waiting = LineTransport(address, standby=True)
    await waiting.prepare()
    await _answer_lines(first, 0, 1)
    assert await asyncio.wait_for(waiting.wait_ended(), 5) is EndReason.CALLER_HANGUP
    assert await asyncio.wait_for(first.wait_ended(), 1) is EndReason.CALLER_HANGUP
    assert exchange.line_info("c11").legs_total == 1  # type: ignore[union-attr]
    await waiting.aclose()
    await first.aclose()


async def test_a_wrong_token_or_unknown_call_is_refused(exchange: LineExchange) -> None:
    address = await exchange.dial(CallerOrder("c3", _scenario()))
    with pytest.raises(LineError, match="refused call c3"):
        await LineTransport(dataclasses.replace(address, token="0" * 32)).prepare()
    with pytest.raises(LineError, match="refused call nope"):
        await LineTransport(dataclasses.replace(address, call_id="nope")).prepare()
    with pytest.raises(LineError, match="no caller host"):
        await LineTransport(dataclasses.replace(address, port=1), ready_timeout_s=2).prepare()


async def test_a_transfer_and_dtmf_reach_the_caller_and_end_the_call_transferred(
        exchange: LineExchange) -> None:
    address = await exchange.dial(CallerOrder("c4", _scenario()))
    transport = await _open(address)
    await transport.send_dtmf("1#")
    await transport.transfer("+1 (555) 010-0999")
    reason = await asyncio.wait_for(transport.wait_ended(), 5)
    await transport.aclose()
    assert reason is EndReason.TRANSFERRED
    assert transport.transfers == ["+15550100999"]
    assert transport.dtmf_sent == ["1#"]


async def test_an_orphaned_caller_hangs_up_and_a_late_leg_learns_the_end() -> None:
    ex = await LineExchange(_ToneVoice(), orphan_timeout_s=0.2).start()
    try:
        address = await ex.dial(CallerOrder("c5", _scenario()))
        await asyncio.sleep(0.5)
        assert ex.status().live == 0
        late = LineTransport(address)
        await late.connect()
        assert await asyncio.wait_for(late.wait_ended(), 2) is EndReason.AGENT_HANGUP
        await late.aclose()
    finally:
        await ex.aclose()


async def test_the_orphan_clock_starts_when_the_leg_drops_not_at_the_dial() -> None:
    # a leg that drops just before the dial's orphan deadline still leaves the caller a whole
    # orphan timeout on the line for a new call actor (it once hung up 7 s after a node loss)
    ex = await LineExchange(_ToneVoice(), orphan_timeout_s=0.6).start()
    try:
        address = await ex.dial(CallerOrder("c7", _scenario()))
        first = await _open(address)
        await asyncio.sleep(0.45)
        await first.aclose()
        await asyncio.sleep(0.35)  # 0.8 s after the dial, 0.35 s after the drop
        assert ex.status().live == 1
        second = await _open(address)
        info = ex.line_info("c7")
        assert info is not None and info.live and info.leg_connected
        await second.aclose()
        await asyncio.sleep(0.9)  # orphaned again, past the timeout: now it hangs up
        assert ex.status().live == 0
    finally:
        await ex.aclose()


async def test_the_agent_hanging_up_ends_the_callers_script(exchange: LineExchange) -> None:
    address = await exchange.dial(CallerOrder("c6", _scenario()))
    transport = await _open(address)
    await _agent_says(transport)
    await transport.hangup()  # reports back before it returns
    await transport.aclose()
    assert transport._ended is not None and transport._ended.result() is EndReason.AGENT_HANGUP
    assert exchange.status().live == 0
