"""The real livekit plugins (``deepgram.STT``, ``openai.LLM``, ``cartesia.TTS``) against the
loopback simulators: what they hear and say, the model of time (docs/performance.md) within a
tolerance, the query parameters the plugins send, tool calls, reconnects and every fault.
Traffic goes to 127.0.0.1 only; audio is pushed at real-time pace where time is measured."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
import urllib.request
from array import array
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, APIError, APIStatusError, llm, stt
from livekit.plugins import cartesia, deepgram, openai  # register on the main thread

from voice_ai.simulators import (
    Fault,
    LatencyProfile,
    ProviderSimulators,
    ScriptedReply,
    ToolCall,
    named_profile,
    tone_pcm16,
)
from voice_ai.simulators.transcript import ScriptedLine

pytestmark = pytest.mark.integration

RATE = 16_000
FRAME_S = 0.02
KEY = "test-key"
FAST = APIConnectOptions(max_retry=0, retry_interval=0.05, timeout=1.0)


def tone(seconds: float, freq: float = 300.0, rate: int = RATE) -> list[int]:
    """A loud tone: the simulator hears it as speech."""
    return [int(6000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(int(seconds * rate))]


def silence(seconds: float, rate: int = RATE) -> list[int]:
    return [0] * int(seconds * rate)


def pcm(*parts: list[int]) -> bytes:
    return array("h", [s for part in parts for s in part]).tobytes()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sims() -> AsyncIterator[ProviderSimulators]:
    async with ProviderSimulators("zero") as running:
        for server in running.servers.values():
            server.slow_delay_s = 0.3
        yield running


# --- Deepgram ------------------------------------------------------------------------------
def dg_plugin(sims: ProviderSimulators, http: aiohttp.ClientSession, **options: Any) -> Any:
    return deepgram.STT(api_key=KEY, base_url=sims.deepgram.listen_url, http_session=http,
                        sample_rate=RATE, **options)


async def push_realtime(stream: Any, audio: bytes) -> float:
    """Push 20 ms frames at real-time pace, each at the START of the audio it holds (as the
    simulated caller does); returns when the last non-silent frame's audio ended."""
    step = int(RATE * FRAME_S) * 2
    started = time.monotonic()
    speech_end = started
    for k, i in enumerate(range(0, len(audio), step)):
        at = started + k * FRAME_S
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        chunk = audio[i : i + step]
        stream.push_frame(rtc.AudioFrame(chunk, RATE, 1, len(chunk) // 2))
        if any(chunk):
            speech_end = at + FRAME_S
    return speech_end


async def collect(stream: Any, events: list[tuple[float, stt.SpeechEvent]]) -> None:
    async for event in stream:
        events.append((time.monotonic(), event))


def of_type(events: list[tuple[float, stt.SpeechEvent]],
            kind: stt.SpeechEventType) -> list[tuple[float, stt.SpeechEvent]]:
    return [(t, e) for t, e in events if e.type == kind]


async def run_stream(plugin: Any, audio: bytes, *, settle_s: float = 0.5,
                     conn: APIConnectOptions = FAST) -> tuple[float, list[Any]]:
    stream = plugin.stream(conn_options=conn)
    events: list[tuple[float, stt.SpeechEvent]] = []
    reader = asyncio.create_task(collect(stream, events))
    speech_end = await push_realtime(stream, audio)
    await asyncio.sleep(settle_s)
    await stream.aclose()
    reader.cancel()
    return speech_end, events


async def test_final_comes_300ms_after_the_end_of_speech_with_interims_before(
    http: aiohttp.ClientSession,
) -> None:
    async with ProviderSimulators("realistic", seed=3) as sims:
        sims.deepgram.script("I would like to book a cleaning for Tuesday morning.")
        plugin = dg_plugin(sims, http)  # the plugin's defaults: interims, endpointing 25 ms
        speech_end, events = await run_stream(plugin, pcm(silence(0.1), tone(1.5),
                                                          silence(0.5)))
    finals = of_type(events, stt.SpeechEventType.FINAL_TRANSCRIPT)
    interims = of_type(events, stt.SpeechEventType.INTERIM_TRANSCRIPT)
    assert [e.alternatives[0].text for _, e in finals] == [
        "I would like to book a cleaning for Tuesday morning."]
    delay = finals[0][0] - speech_end
    # 300 ± 30 ms; audio reaches the simulator up to 20 ms before its end (frames are pushed
    # at their start) and an event loop on a shared machine adds a little
    assert 0.25 <= delay <= 0.40, delay
    assert interims and interims[-1][0] < finals[0][0]
    interim_text, final_text = (interims[-1][1].alternatives[0].text,
                                finals[0][1].alternatives[0].text)
    assert interim_text and final_text.startswith(interim_text)
    assert interim_text != final_text  # an interim never holds the whole line
    assert of_type(events, stt.SpeechEventType.END_OF_SPEECH)  # speech_final: endpointing on


async def test_a_short_pause_does_not_end_the_line(
    sims: ProviderSimulators, http: aiohttp.ClientSession
) -> None:
    sims.deepgram.script("Hello there.", "Second line.")
    plugin = dg_plugin(sims, http)
    _, events = await run_stream(plugin, pcm(tone(0.3), silence(0.12), tone(0.3),
                                             silence(0.4)), settle_s=0.3)
    finals = [e.alternatives[0].text for _, e in of_type(events,
                                                           stt.SpeechEventType.FINAL_TRANSCRIPT)]
    assert finals == ["Hello there."]


async def test_a_known_line_is_recognised_and_split_at_its_comma(
    sims: ProviderSimulators, http: aiohttp.ClientSession
) -> None:
    first = pcm(tone(0.5, 300), silence(0.35), tone(0.9, 300))
    second = pcm(tone(0.5, 450), silence(0.35), tone(0.9, 450))
    sims.deepgram.learn("Hello, I would like to book a cleaning.", first, RATE)
    sims.deepgram.learn("Hi, what are your opening hours on Friday?", second, RATE)
    sims.deepgram.script("not this one")
    plugin = dg_plugin(sims, http)
    _, events = await run_stream(plugin, pcm(silence(0.2)) + second + pcm(silence(0.4)),
                                 settle_s=0.3)
    finals = [e.alternatives[0].text for _, e in of_type(events,
                                                           stt.SpeechEventType.FINAL_TRANSCRIPT)]
    assert finals == ["Hi,", "what are your opening hours on Friday?"]
    assert sims.deepgram.lines_recognised == 1
    assert list(sims.deepgram.transcripts) == ["not this one"]


def test_seeded_jitter_repeats_and_stays_in_its_band() -> None:
    def draws(seed: int) -> list[float]:
        profile = named_profile("realistic", seed)
        return [profile.deepgram.first_delay_s() for _ in range(50)]

    assert draws(4) == draws(4) and draws(4) != draws(5)
    assert all(0.27 <= d <= 0.33 for d in draws(4))
    openai_timing = named_profile("realistic").openai
    assert {openai_timing.chunk_delay_s() for _ in range(5)} == {0.02}  # a token every 20 ms
    with pytest.raises(ValueError, match="jitter must not exceed"):
        LatencyProfile(ttfb_s=0.01, jitter_s=0.05)
    with pytest.raises(ValueError, match="arguments are not JSON"):
        ToolCall("book", "{day: Tuesday}")


def test_scripted_line_releases_words_with_the_audio() -> None:
    line = ScriptedLine("Okay. I would like to book a cleaning, please.", speech_s=2.4)
    assert line.interim_text(0.3) == ""  # nothing stable yet
    assert line.interim_text(1.3) == "Okay. I would"
    assert line.take_final(0.35) == "Okay."  # snapped to the full stop
    assert line.take_final(1.9) == "I would like to book a cleaning,"
    assert line.interim_text(2.4) == ""  # an interim never completes the line
    assert line.take_final(2.4) == "please." and line.complete
    unknown = ScriptedLine("Tuesday at ten, please.")
    assert unknown.take_final(0.5) == "Tuesday at ten, please."  # pace unknown: whole line


async def test_query_parameters_are_honoured(
    sims: ProviderSimulators, http: aiohttp.ClientSession
) -> None:
    sims.deepgram.script("one", "two")
    quiet = dg_plugin(sims, http, interim_results=False, vad_events=False, endpointing_ms=0)
    _, events = await run_stream(quiet, pcm(tone(1.3), silence(0.4)), settle_s=0.3)
    kinds = [e.type for _, e in events if e.type != stt.SpeechEventType.RECOGNITION_USAGE]
    # no interims, no SpeechStarted (START comes with the transcript), no speech_final
    assert kinds == [stt.SpeechEventType.START_OF_SPEECH, stt.SpeechEventType.FINAL_TRANSCRIPT]

    async with http.ws_connect(
        f"{sims.deepgram.listen_url}?vad_events=true&interim_results=true&endpointing=500"
        f"&utterance_end_ms=1000&sample_rate={RATE}",
        headers={"Authorization": f"Token {KEY}"},
    ) as ws:  # audio at once: it counts as spoken when it arrived, delays run from there
        started = time.monotonic()
        await ws.send_bytes(pcm(silence(0.1), tone(0.4), silence(1.2)))
        messages = []
        async for m in ws:
            messages.append(json.loads(m.data) | {"after_s": time.monotonic() - started})
            if messages[-1]["type"] == "UtteranceEnd":
                await ws.send_str(json.dumps({"type": "CloseStream"}))
    assert [m["type"] for m in messages] == ["SpeechStarted", "Results", "UtteranceEnd",
                                             "Metadata"]
    assert messages[0]["timestamp"] == pytest.approx(0.1, abs=0.011)
    assert messages[1]["is_final"] and messages[1]["speech_final"]
    assert messages[1]["channel"]["alternatives"][0]["transcript"] == "two"
    assert messages[1]["start"] == pytest.approx(0.1, abs=0.011)
    assert messages[1]["duration"] == pytest.approx(0.4, abs=0.011)
    assert 0.5 <= messages[1]["after_s"] < 0.6  # endpointing=500 is longer than the profile
    assert 1.0 <= messages[2]["after_s"] < 1.1


async def test_reconnect_after_a_drop_keeps_the_line(
    sims: ProviderSimulators, http: aiohttp.ClientSession
) -> None:
    sims.deepgram.script("I need to move my appointment.")
    plugin = dg_plugin(sims, http)
    stream = plugin.stream(conn_options=APIConnectOptions(max_retry=3, retry_interval=0.05,
                                                          timeout=1.0))
    events: list[tuple[float, stt.SpeechEvent]] = []
    reader = asyncio.create_task(collect(stream, events))
    await push_realtime(stream, pcm(tone(0.4)))
    assert sims.deepgram.drop_live_connections() == 1  # mid-line
    await push_realtime(stream, pcm(tone(0.4), silence(0.4)))
    await asyncio.sleep(0.3)
    await stream.aclose()
    reader.cancel()
    finals = [e.alternatives[0].text for _, e in of_type(events,
                                                           stt.SpeechEventType.FINAL_TRANSCRIPT)]
    assert finals == ["I need to move my appointment."]
    assert sims.deepgram.requests == 2


# --- OpenAI ----------------------------------------------------------------------------------
def oai_plugin(sims: ProviderSimulators, http: aiohttp.ClientSession) -> Any:
    del http  # the openai plugin uses its own httpx client
    return openai.LLM(model="gpt-4o-mini", api_key=KEY, base_url=sims.openai.api_url)


def chat(text: str = "Can I book Tuesday at ten?") -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content="Be brief.")
    ctx.add_message(role="user", content=text)
    return ctx


@llm.function_tool
async def book_appointment(day: str, time: str) -> str:
    """Book an appointment.

    Args:
        day: the day
        time: the time
    """
    return f"booked {day} {time}"


async def test_tool_calls_stream_as_openai_streams_them(
    sims: ProviderSimulators, http: aiohttp.ClientSession
) -> None:
    args = json.dumps({"day": "Tuesday", "time": "10:00"})
    sims.openai.script(ScriptedReply(text="One moment.", tool_calls=(
        ToolCall("book_appointment", args, call_id="call_1"),
        ToolCall("book_appointment", json.dumps({"day": "Friday", "time": "09:00"})),
    )))
    model = oai_plugin(sims, http)
    text, calls = "", []
    async with model.chat(chat_ctx=chat(), tools=[book_appointment], conn_options=FAST) as s:
        async for chunk in s:
            if chunk.delta is not None:
                text += chunk.delta.content or ""
                calls += chunk.delta.tool_calls
    assert text == "One moment."
    assert [(c.name, c.call_id, json.loads(c.arguments)) for c in calls][0] == (
        "book_appointment", "call_1", {"day": "Tuesday", "time": "10:00"})
    assert json.loads(calls[1].arguments) == {"day": "Friday", "time": "09:00"}
    assert len(calls) == 2 and calls[1].call_id.startswith("call_")
    request = sims.openai.chat_requests[-1]
    assert request.tool_names == ["book_appointment"]
    assert request.last_user_text == "Can I book Tuesday at ten?"
    assert request.messages[0] == {"role": "system", "content": "Be brief."}
    await model.aclose()


async def test_openai_first_token_then_one_every_20ms(http: aiohttp.ClientSession) -> None:
    async with ProviderSimulators("realistic", seed=5) as sims:
        sims.openai.script("We are open Monday to Friday, from nine to five.")
        model = oai_plugin(sims, http)
        times, text = [], ""
        async with model.chat(chat_ctx=chat(), conn_options=FAST) as s:
            async for chunk in s:
                if chunk.delta is not None and chunk.delta.content:
                    times.append(time.monotonic())
                    text += chunk.delta.content
        await model.aclose()
        # from the request's arrival: the client's own set-up is not the simulator's latency
        received = sims.openai.chat_requests[-1].received_at
    assert text == "We are open Monday to Friday, from nine to five."
    assert 0.36 <= times[0] - received <= 0.50, times[0] - received
    interval = (times[-1] - times[0]) / (len(times) - 1)
    assert 0.018 <= interval <= 0.03, interval
    assert len(times) == 12  # a word with its space, punctuation apart


# --- Cartesia ---------------------------------------------------------------------------------
def tts_plugin(sims: ProviderSimulators, http: aiohttp.ClientSession) -> Any:
    return cartesia.TTS(api_key=KEY, base_url=sims.cartesia.base_url, http_session=http,
                        sample_rate=24_000)


async def test_cartesia_first_audio_90ms_after_the_first_text_and_continuations(
    http: aiohttp.ClientSession,
) -> None:
    async with ProviderSimulators("realistic", seed=7) as sims:
        plugin = tts_plugin(sims, http)  # the plugin's sentence tokenizer, continue: true
        stream = plugin.stream(conn_options=FAST)
        first_audio: list[float] = []
        audio = bytearray()

        async def read() -> None:
            async for ev in stream:
                if not first_audio:
                    first_audio.append(time.monotonic())
                audio.extend(ev.frame.data.tobytes())

        reader = asyncio.create_task(read())
        stream.push_text("Hello there, how are you")
        await asyncio.sleep(0.2)
        stream.push_text(" today? We are open until five.")
        stream.end_input()
        await asyncio.wait_for(reader, 5)
        await stream.aclose()

        started = time.monotonic()
        async with plugin.synthesize("Bytes too.", conn_options=FAST) as chunked:
            bytes_first = [time.monotonic() async for _ in chunked][0] - started
    packets = [p for p in sims.cartesia.packets if p.context_id]
    assert [(p.text, p.more) for p in packets] == [
        ("Hello there, how are you today? ", True), ("We are open until five. ", True),
        (" ", False)]
    assert len({p.context_id for p in packets}) == 1
    assert 0.08 <= first_audio[0] - packets[0].at <= 0.14, first_audio[0] - packets[0].at
    assert 0.08 <= bytes_first <= 0.16, bytes_first
    expected = sum(len(tone_pcm16(p.text, 24_000)) for p in packets)
    assert expected <= len(audio) < expected + 0.1 * 24_000 * 2


async def test_cartesia_contexts_share_a_socket_and_cancel(sims: ProviderSimulators,
                                                           http: aiohttp.ClientSession) -> None:
    def packet(context: str, text: str, more: bool) -> str:
        return json.dumps({"context_id": context, "transcript": text, "continue": more,
                           "add_timestamps": True, "output_format": {"sample_rate": 8000}})

    async with http.ws_connect(f"{sims.cartesia.base_url}/tts/websocket",
                               headers={"X-API-Key": KEY}) as ws:
        await ws.send_str(packet("a", "First context. ", True))
        await ws.send_str(packet("b", "Second one. ", False))
        await ws.send_str(json.dumps({"context_id": "a", "cancel": True}))
        got: dict[str, list[str]] = {"a": [], "b": []}
        async for msg in ws:
            data = json.loads(msg.data)
            got[data["context_id"]].append(data["type"])
            if data["type"] == "done":
                break
    assert "done" not in got["a"]
    assert got["b"][-2:] == ["timestamps", "done"] and "chunk" in got["b"]


# --- faults -----------------------------------------------------------------------------------
async def use(provider: str, sims: ProviderSimulators, http: aiohttp.ClientSession) -> str:
    if provider == "deepgram":
        sims.deepgram.script("hello")
        plugin = dg_plugin(sims, http)
        stream = plugin.stream(conn_options=FAST)
        stream.push_frame(rtc.AudioFrame(pcm(tone(0.3), silence(0.3)), RATE, 1, 9600))
        async with asyncio.timeout(1.5):
            async for ev in stream:
                if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                    await stream.aclose()
                    return str(ev.alternatives[0].text)
        raise AssertionError("no final transcript")
    if provider == "openai":
        model = oai_plugin(sims, http)
        async with asyncio.timeout(1.5), model.chat(chat_ctx=chat(), conn_options=FAST) as s:
            return "".join([c.delta.content or "" async for c in s if c.delta is not None])
    plugin = tts_plugin(sims, http)
    async with asyncio.timeout(1.5), plugin.synthesize("Hello there.", conn_options=FAST) as s:
        return str(len(b"".join([ev.frame.data.tobytes() async for ev in s])))


@pytest.mark.parametrize("provider", ["deepgram", "openai", "cartesia"])
@pytest.mark.parametrize(("fault", "status"), [
    (Fault.HTTP_500, 500), (Fault.HTTP_429, 429), (Fault.HTTP_401, 401),
    (Fault.REFUSE, None), (Fault.HANG, None), (Fault.DROP_MID_STREAM, None),
])
async def test_each_fault_fails_the_plugin_then_it_recovers(
    sims: ProviderSimulators, http: aiohttp.ClientSession, provider: str, fault: Fault,
    status: int | None,
) -> None:
    await sims.set_fault(provider, fault)
    with pytest.raises((APIError, TimeoutError, AssertionError)) as caught:
        await use(provider, sims, http)
    if status is not None:
        assert isinstance(caught.value, APIStatusError)
        assert caught.value.status_code == status
    await sims.set_fault(provider, Fault.NONE)  # and it recovers, on the same port
    assert await use(provider, sims, http)


@pytest.mark.parametrize("provider", ["deepgram", "openai", "cartesia"])
async def test_slow_answers_late_but_right(sims: ProviderSimulators,
                                           http: aiohttp.ClientSession, provider: str) -> None:
    await sims.set_fault(provider, Fault.SLOW)
    started = time.monotonic()
    assert await use(provider, sims, http)
    assert time.monotonic() - started >= 0.3


def test_standalone_command_serves_on_the_port_base() -> None:
    port_base = 18_700
    proc = subprocess.Popen(
        [sys.executable, "-m", "voice_ai.simulators", "--profile", "zero",
         "--port-base", str(port_base)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        assert urls["openai_base_url"] == f"http://127.0.0.1:{port_base + 1}/v1"
        with urllib.request.urlopen(f"{urls['openai_base_url']}/models", timeout=5) as resp:
            assert json.load(resp)["data"][0]["object"] == "model"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_a_simulator_records_how_late_its_modelled_delays_left() -> None:
    """The benchmark's yardstick: a busy event loop (the driver hosts the simulators) makes
    the modelled delays late, and the simulator says by how much."""
    sim = ProviderSimulators("zero").openai
    await sim.pace(0.01)
    loop = asyncio.get_running_loop()
    loop.call_later(0.005, time.sleep, 0.06)  # something else holds the loop for 60 ms
    await sim.pace(0.01)
    assert len(sim.lateness_s) == 2
    assert 0.0 <= sim.lateness_s[0] < 0.03
    assert sim.lateness_s[1] >= 0.05
