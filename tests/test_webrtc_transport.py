"""WebRtcTransport against a second aiortc peer in this process playing the browser: Opus both
ways over real ICE/DTLS/SRTP on the host's own address, the data channel, barge-in, the ends."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import numpy as np
import pytest
from livekit.agents import AgentSession
from livekit.agents.voice.events import UserInputTranscribedEvent

from tests.webrtc_peer import FRAME, RATE, BrowserPeer
from voice_ai.audio import frame_from_pcm, rms
from voice_ai.config import Settings
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transports import answer_offer
from voice_ai.records import EndReason, TurnTimings
from voice_ai.webrtc.transport import CALLER_SAMPLE_RATE, WebRtcTransport

pytestmark = pytest.mark.unit


def _tone(seconds: float, rate: int = RATE, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * math.pi * hz * t) * 10_000).astype(np.int16).tobytes()


async def _call(browser: BrowserPeer, **kwargs: Any) -> tuple[WebRtcTransport, AgentSession[None]]:
    transport = WebRtcTransport(await browser.offer(), **kwargs)
    answer = await transport.accept()
    assert "opus/48000/2" in answer.sdp and "typ host" in answer.sdp
    assert "typ srflx" not in answer.sdp  # no STUN: host candidates only
    await browser.answer(answer)
    await asyncio.wait_for(transport.connect(), 10)
    assert not transport.ended
    session: AgentSession[None] = AgentSession()
    await transport.attach(session)
    return transport, session


async def test_caller_audio_in_agent_audio_out_and_the_page_hears_both_sides() -> None:
    browser = BrowserPeer(mic_pcm=_tone(0.6))
    transport, session = await _call(browser)
    try:
        audio_in = session.input.audio
        assert audio_in is not None
        heard = [await asyncio.wait_for(anext(audio_in), 5) for _ in range(25)]
        assert {f.sample_rate for f in heard} == {CALLER_SAMPLE_RATE}
        assert sum(f.duration for f in heard) > 0.5  # the resampler cuts its own frame sizes
        assert max(rms(f.data.tobytes()) for f in heard) > 3000  # the tone came through Opus

        voice = transport.audio_output
        started: list[float] = []
        voice.on("playback_started", lambda ev: started.append(ev.created_at))
        t0 = time.time()
        for i in range(0, 24_000 * 2 * 4 // 10, 960):  # 0.4 s of agent voice at 24 kHz
            await voice.capture_frame(frame_from_pcm(_tone(0.4, 24_000)[i : i + 960], 24_000))
        voice.flush()
        finished = await asyncio.wait_for(voice.wait_for_playout(), 5)
        assert finished.interrupted is False
        assert finished.playback_position == pytest.approx(0.4, abs=0.03)
        assert time.time() - t0 >= 0.35  # played at real time, not dumped
        assert len(started) == 1 and transport.agent_audio_started_at == started
        await asyncio.sleep(0.3)  # jitter buffer
        assert len(browser.loud_at) >= 10  # the page's analyser: agent audio arrived

        session.emit("user_input_transcribed",
                     UserInputTranscribedEvent(transcript="I need an appointment", is_final=True))
        transport.report_turn(TurnTimings(index=0, ended_speaking_at=t0, e2e_s=0.8123,
                                          stt_s=0.2, llm_ttft_s=0.3, tts_ttfb_s=0.1,
                                          stt_provider="whisper", llm_provider="local",
                                          tts_provider="piper"))
        said = await browser.message("transcript")
        assert (said["role"], said["text"], said["final"]) == ("caller", "I need an appointment",
                                                                True)
        turn = await browser.message("turn")
        assert turn["e2e_ms"] == 812
        assert turn["providers"] == {"stt": "whisper", "llm": "local", "tts": "piper"}

        browser.channel.send(json.dumps({"type": "hangup"}))
        assert await asyncio.wait_for(transport.wait_ended(), 3) is EndReason.CALLER_HANGUP
    finally:
        await transport.hangup()
        await transport.aclose()
        await browser.close()


async def test_barge_in_stops_the_agent_at_the_browser() -> None:
    """What had not gone out when the caller spoke over the agent never reaches the browser.

    Measured by how much agent audio the browser heard against how much had been sent, not by
    when it arrived: both peers share this process, so on a loaded machine the receiving side's
    jitter buffer and decoder thread lag by hundreds of ms and a wall-clock bound would measure
    the machine, not the transport."""
    browser = BrowserPeer()
    transport, _ = await _call(browser)
    try:
        voice = transport.audio_output
        started: list[float] = []
        voice.on("playback_started", lambda ev: started.append(ev.created_at))
        tone = _tone(3.0, RATE)
        for i in range(0, len(tone), FRAME * 2):
            await voice.capture_frame(frame_from_pcm(tone[i : i + FRAME * 2], RATE))
        voice.flush()
        await asyncio.sleep(0.6)
        voice.clear_buffer()  # the caller spoke over the agent
        cleared_at = time.time()
        finished = await asyncio.wait_for(voice.wait_for_playout(), 2)
        assert finished.interrupted is True
        sent_s = finished.playback_position
        assert started, "playback never started"
        # paced at real time, not dumped (a sender that fell behind catches up <= 0.2 s)
        assert 0.1 <= sent_s <= cleared_at - started[0] + 0.25
        assert sent_s < 2.0  # 3 s were queued: the rest was dropped
        heard_s = await _heard_until_quiet(browser)
        assert heard_s > 0, "the agent was never heard"
        # what was sent arrives, nothing queued after it (60 ms: a frame in the encoder, Opus tail)
        assert heard_s <= sent_s + 0.06, (
            f"the browser heard {heard_s:.2f} s of agent audio, only {sent_s:.2f} s was sent "
            "before the barge-in")
        assert heard_s >= sent_s / 2
    finally:
        await transport.aclose()
        await browser.close()


async def _heard_until_quiet(browser: BrowserPeer, quiet_s: float = 0.5,
                             timeout_s: float = 10.0) -> float:
    """How much loud agent audio the browser heard, once nothing new has arrived for quiet_s."""
    deadline = time.monotonic() + timeout_s
    last, last_change = browser.loud_s, time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if browser.loud_s != last:
            last, last_change = browser.loud_s, time.monotonic()
        elif time.monotonic() - last_change >= quiet_s:
            return last
    raise AssertionError(f"agent audio still arriving {timeout_s} s after the barge-in")


async def test_agent_hangup_and_transfer_are_told_to_the_page() -> None:
    browser = BrowserPeer()
    transport, _ = await _call(browser)
    await transport.transfer("+1 555 010 0999")
    assert await transport.wait_ended() is EndReason.TRANSFERRED
    told = await browser.message("transfer")
    assert told["to"] == "+1********99"  # masked: no full number on the page either
    end = await browser.message("end")
    assert (end["reason"], end["outcome"]) == ("transferred", "transferred")
    await transport.hangup()
    await transport.aclose()
    await browser.close()

    browser = BrowserPeer()
    transport, _ = await _call(browser)
    await transport.hangup()
    await transport.aclose()
    end = await browser.message("end")
    assert (end["reason"], end["outcome"]) == ("agent_hangup", "completed")
    await browser.close()


async def test_an_abandoned_offer_ends_the_call_after_the_ice_timeout() -> None:
    """Built from a CallSpec as a call actor does: watched, timeouts from Settings."""
    browser = BrowserPeer()
    spec = CallSpec(call_id="c1", webrtc_offer=await browser.offer())
    assert spec.kind == "webrtc"
    settings = Settings(_env_file=None, webrtc_ice_timeout_s=0.3,  # type: ignore[call-arg]
                        call_silence_timeout_s=7)
    transport, answer = await answer_offer(spec, settings)  # the page never gets the answer
    assert "opus/48000/2" in answer.sdp
    assert transport.watchdog is not None
    assert transport.watchdog.limits.silence_timeout_s == 7
    t0 = time.monotonic()
    await transport.connect()
    assert 0.25 <= time.monotonic() - t0 < 2.0
    assert await transport.wait_ended() is EndReason.TIMEOUT
    assert "WEBRTC_ICE_TIMEOUT_S" in transport.end_detail
    await transport.aclose()
    await browser.close()
    with pytest.raises(ValueError, match="exactly one of scenario, room or webrtc_offer"):
        CallSpec(call_id="c2", room="call-x", webrtc_offer=spec.webrtc_offer)
