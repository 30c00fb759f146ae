"""Provider pools through the in-memory port: worker choice, retry after a worker restart,
streams that already produced output are never replayed, and livekit's objects (chat
contexts with tool calls, tool schemas, speech events, audio) cross the port intact."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from livekit.agents import APIConnectionError, llm

from tests.fakes.providers import (
    LiveSTT,
    ScriptedLLM,
    ScriptedSTT,
    ToneTTS,
    ToolCallReply,
    utterance,
)
from voice_ai.errors import TransientProviderError
from voice_ai.providers.host import ProviderHost
from voice_ai.providers.memory import MemoryPool
from voice_ai.providers.pool import ProviderPool
from voice_ai.providers.pooled import PooledLLM, PooledSTT, PooledTTS
from voice_ai.providers.wire import EndInput, TextIn, TtsOpen

pytestmark = pytest.mark.unit


def pool_of(stage: str, name: str, *providers: Any, restart_wait_s: float = 1.0
            ) -> tuple[MemoryPool, ProviderPool]:
    port = MemoryPool([ProviderHost(stage, name, p) for p in providers])
    return port, ProviderPool(port, restart_wait_s=restart_wait_s)


async def test_streams_go_to_the_least_busy_worker() -> None:
    port, pool = pool_of("tts", "piper", ToneTTS(first_audio_s=1.0), ToneTTS(), ToneTTS())
    streams = [pool.open(TtsOpen()) for _ in range(3)]
    for s in streams:
        s.send(TextIn("Hello there."))
    readers = [asyncio.create_task(anext(s.outputs())) for s in streams]
    await asyncio.sleep(0.05)
    assert sorted(s.worker for s in streams if s.worker is not None) == [0, 1, 2]
    assert pool.busy == [1, 1, 1]
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for s in streams:
        await s.aclose()
    assert pool.busy == [0, 0, 0]


async def test_worker_lost_before_output_is_retried_after_restart_with_inputs_replayed() -> None:
    slow = ToneTTS(first_audio_s=0.2)
    port, pool = pool_of("tts", "piper", slow)
    stream = pool.open(TtsOpen())
    stream.send(TextIn("Hello "))
    stream.send(TextIn("there."))
    stream.send(EndInput())
    outputs = asyncio.create_task(_collect(stream))
    await asyncio.sleep(0.05)
    port.kill(0)  # the worker died before any audio
    await asyncio.sleep(0.05)
    port.restart(0)
    audio = await asyncio.wait_for(outputs, 2.0)
    assert audio and slow.texts[-1] == "Hello there."  # the new run got every input


async def test_worker_lost_mid_stream_is_not_replayed() -> None:
    port, pool = pool_of("tts", "piper", ToneTTS())
    stream = pool.open(TtsOpen())
    stream.send(TextIn("One two three four five six seven eight."))
    outputs = stream.outputs()
    await anext(outputs)  # audio reached the caller
    port.kill(0)
    with pytest.raises(TransientProviderError, match="mid-stream"):
        async for _ in outputs:
            pass


async def test_worker_that_does_not_come_back_fails_transiently() -> None:
    port, pool = pool_of("llm", "local", ScriptedLLM(), restart_wait_s=0.05)
    port.kill(0)
    pooled = PooledLLM(pool)
    with pytest.raises(APIConnectionError):
        async with pooled.chat(chat_ctx=llm.ChatContext.empty()) as s:
            async for _ in s:
                pass


@llm.function_tool
async def book_appointment(day: str, time: str) -> str:
    """Book an appointment.

    Args:
        day: weekday
        time: HH:MM
    """
    return f"booked {day} {time}"


async def test_tools_cross_the_pool_both_ways() -> None:
    worker_llm = ScriptedLLM([ToolCallReply("book_appointment", '{"day": "Tuesday", '
                                            '"time": "10:00"}', "call_7"), "Booked."])
    _, pool = pool_of("llm", "openai", worker_llm)
    pooled = PooledLLM(pool)
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="user", content="Tuesday at ten please")

    async with pooled.chat(chat_ctx=ctx, tools=[book_appointment]) as s:
        calls = [t for c in [c async for c in s] if c.delta for t in c.delta.tool_calls]
    assert [(c.name, c.arguments, c.call_id) for c in calls] == [
        ("book_appointment", '{"day": "Tuesday", "time": "10:00"}', "call_7")]
    assert worker_llm.tools_seen[0] == ["book_appointment"]  # the schema reached the worker

    ctx.insert(llm.FunctionCall(name="book_appointment", call_id="call_7",
                                arguments='{"day": "Tuesday", "time": "10:00"}'))
    ctx.insert(llm.FunctionCallOutput(name="book_appointment", call_id="call_7",
                                      output="booked Tuesday 10:00", is_error=False))
    async with pooled.chat(chat_ctx=ctx, tools=[book_appointment]) as s:
        text = "".join([c.delta.content or "" async for c in s if c.delta])
    assert text.strip() == "Booked."
    seen = worker_llm.requests[1].items
    assert [i.type for i in seen] == ["message", "function_call", "function_call_output"]
    assert seen[2].output == "booked Tuesday 10:00"  # type: ignore[union-attr]


async def test_speech_recognition_through_the_pool() -> None:
    _, whisper_pool = pool_of("stt", "whisper", ScriptedSTT(["one utterance"]))
    whisper = PooledSTT(whisper_pool, streaming=False)
    ev = await whisper.recognize(utterance())
    assert ev.alternatives[0].text == "one utterance"

    _, live_pool = pool_of("stt", "deepgram", LiveSTT(["live words"]))
    live = PooledSTT(live_pool, streaming=True)
    stream = live.stream()
    for f in utterance():
        stream.push_frame(f)
    stream.end_input()
    kinds = [(ev.type.value, ev.alternatives[0].text if ev.alternatives else "")
             async for ev in stream]
    assert ("final_transcript", "live words") in kinds
    assert ("end_of_speech", "") in kinds


async def test_voice_through_the_pool_streams_audio_at_its_rate() -> None:
    _, pool = pool_of("tts", "piper", ToneTTS(rate=22_050))
    voice = await PooledTTS.connect(pool)
    assert voice.sample_rate == 22_050
    stream = voice.stream()
    stream.push_text("Hi there.")
    stream.end_input()
    got = [ev.frame async for ev in stream]
    seconds = sum(f.duration for f in got)
    assert abs(seconds - 0.02 * len("Hithere.")) < 0.015


async def _collect(stream: Any) -> bytes:
    return b"".join([o.pcm async for o in stream.outputs()])
