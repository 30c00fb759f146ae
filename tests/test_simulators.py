"""The real livekit plugins (through our cloud engines) against the loopback simulators:
transcripts, text and audio come out right; each fault becomes the right classified error;
the latency profile is roughly honoured. Traffic goes to 127.0.0.1 only."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
from array import array
from collections.abc import AsyncIterator

import pytest
from livekit.plugins import cartesia, deepgram, openai  # noqa: F401  # register on main thread

from voice_ai.config import Settings
from voice_ai.errors import PermanentProviderError, ProviderError, TransientProviderError
from voice_ai.providers.cloud import CartesiaEngine, DeepgramEngine, OpenAIEngine
from voice_ai.providers.engines import SpeechSynthesizer, SpeechToText, TextGenerator
from voice_ai.simulators import Fault, ProviderSimulators, tone_pcm16

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hours?"}]


def speech(seconds: float = 0.8, silence_s: float = 0.4, rate: int = 16_000) -> bytes:
    """A loud tone (the simulator hears it as speech) followed by silence."""
    tone = [int(6000 * math.sin(2 * math.pi * 300 * i / rate)) for i in range(int(seconds * rate))]
    return array("h", tone + [0] * int(silence_s * rate)).tobytes()


@pytest.fixture
async def sims() -> AsyncIterator[ProviderSimulators]:
    async with ProviderSimulators("zero") as running:
        for server in running.servers.values():
            server.slow_delay_s = 0.3
        yield running


def settings_for(sims: ProviderSimulators, **extra: object) -> Settings:
    values: dict[str, object] = {**sims.settings_overrides(), "provider_timeout_s": 1.0}
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


async def transcribe(engine: DeepgramEngine) -> str:
    return await engine.transcribe(speech(), 16_000)


async def generate(engine: OpenAIEngine) -> str:
    return "".join([delta async for delta in engine.generate(MESSAGES)])


async def synthesize(engine: CartesiaEngine, text: str = "Hello from the clinic.") -> bytes:
    return b"".join([chunk async for chunk in engine.synthesize(text)])


_OPEN: list[DeepgramEngine | OpenAIEngine | CartesiaEngine] = []


@pytest.fixture(autouse=True)
async def close_engines() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


def engines(sims: ProviderSimulators, **extra: object) -> dict[str, object]:
    settings = settings_for(sims, **extra)
    made = {
        "deepgram": DeepgramEngine(settings),
        "openai": OpenAIEngine(settings),
        "cartesia": CartesiaEngine(settings),
    }
    _OPEN.extend(made.values())
    return dict(made)


async def use(provider: str, engine: object) -> object:
    if provider == "deepgram":
        assert isinstance(engine, DeepgramEngine)
        return await transcribe(engine)
    if provider == "openai":
        assert isinstance(engine, OpenAIEngine)
        return await generate(engine)
    assert isinstance(engine, CartesiaEngine)
    return await synthesize(engine)


async def test_engines_implement_the_protocols(sims: ProviderSimulators) -> None:
    e = engines(sims)
    assert isinstance(e["deepgram"], SpeechToText)
    assert isinstance(e["openai"], TextGenerator)
    assert isinstance(e["cartesia"], SpeechSynthesizer)


async def test_deepgram_returns_the_scripted_transcripts(sims: ProviderSimulators) -> None:
    sims.deepgram.script("I would like to book a cleaning.", "Tuesday at ten, please.")
    engine = engines(sims)["deepgram"]
    assert isinstance(engine, DeepgramEngine)
    assert await transcribe(engine) == "I would like to book a cleaning."
    assert await transcribe(engine) == "Tuesday at ten, please."
    assert await transcribe(engine) == "hello world"  # the default once the script is used up


async def test_deepgram_silence_gives_an_empty_transcript(sims: ProviderSimulators) -> None:
    engine = engines(sims)["deepgram"]
    assert isinstance(engine, DeepgramEngine)
    assert await engine.transcribe(bytes(16_000), 16_000) == ""


async def test_openai_streams_the_scripted_reply(sims: ProviderSimulators) -> None:
    sims.openai.script("We are open Monday to Friday, nine to five.")
    engine = engines(sims)["openai"]
    assert isinstance(engine, OpenAIEngine)
    deltas = [d async for d in engine.generate(MESSAGES)]
    assert "".join(deltas) == "We are open Monday to Friday, nine to five."
    assert len(deltas) > 1  # streamed, not in one piece
    assert sims.openai.last_messages[-1] == {"role": "user", "content": "Hours?"}


async def test_cartesia_returns_the_audio_for_the_text(sims: ProviderSimulators) -> None:
    engine = engines(sims)["cartesia"]
    assert isinstance(engine, CartesiaEngine)
    audio = await synthesize(engine, "Your appointment is booked.")
    expected = tone_pcm16("Your appointment is booked.", engine.sample_rate)
    assert audio[: len(expected)] == expected
    padding = audio[len(expected) :]  # livekit's emitter pads the last frame with silence
    assert not any(padding) and len(padding) < 0.1 * engine.sample_rate * 2
    assert sims.cartesia.last_transcript == "Your appointment is booked."


@pytest.mark.parametrize("provider", ["deepgram", "openai", "cartesia"])
@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (Fault.HTTP_500, TransientProviderError, 500),
        (Fault.HTTP_429, TransientProviderError, 429),
        (Fault.HTTP_401, PermanentProviderError, 401),
        (Fault.REFUSE, TransientProviderError, None),
        (Fault.HANG, TransientProviderError, None),
        (Fault.DROP_MID_STREAM, TransientProviderError, None),
    ],
)
async def test_each_fault_gives_the_classified_error(
    sims: ProviderSimulators, provider: str, fault: Fault, error: type[ProviderError],
    status: int | None,
) -> None:
    engine = engines(sims, provider_timeout_s=0.5)[provider]
    await sims.set_fault(provider, fault)
    with pytest.raises(error) as caught:
        await use(provider, engine)
    assert caught.value.provider == provider
    if status is not None:
        assert caught.value.status_code == status
    await sims.set_fault(provider, Fault.NONE)  # and it recovers, on the same port
    assert await use(provider, engine)


@pytest.mark.parametrize("provider", ["deepgram", "openai", "cartesia"])
async def test_slow_answers_late_but_right(sims: ProviderSimulators, provider: str) -> None:
    engine = engines(sims)[provider]
    await sims.set_fault(provider, Fault.SLOW)
    started = time.perf_counter()
    assert await use(provider, engine)
    assert time.perf_counter() - started >= 0.3


async def test_realistic_profile_is_roughly_honoured() -> None:
    async with ProviderSimulators("realistic", seed=1) as sims:
        e = engines(sims, provider_timeout_s=5.0)
        started = time.perf_counter()
        await transcribe(e["deepgram"])  # type: ignore[arg-type]
        stt_s = time.perf_counter() - started

        started = time.perf_counter()
        async for _ in e["openai"].generate(MESSAGES):  # type: ignore[attr-defined]
            llm_ttft_s = time.perf_counter() - started
            break

        started = time.perf_counter()
        async for _ in e["cartesia"].synthesize("Hello there."):  # type: ignore[attr-defined]
            tts_ttfb_s = time.perf_counter() - started
            break
    # lower bounds are the profile minus its jitter; upper bounds allow a busy 2-core machine
    assert 0.27 <= stt_s < 1.0, stt_s
    assert 0.36 <= llm_ttft_s < 1.2, llm_ttft_s
    assert 0.08 <= tts_ttfb_s < 0.8, tts_ttfb_s


@pytest.mark.parametrize(("pooled", "connections"), [(True, 1), (False, 3)])
async def test_connection_pooling_setting(
    sims: ProviderSimulators, pooled: bool, connections: int
) -> None:
    e = engines(sims, enable_connection_pooling=pooled)
    for _ in range(3):
        await use("openai", e["openai"])
        await use("cartesia", e["cartesia"])
    assert len(sims.openai.peers) == connections
    assert len(sims.cartesia.peers) == connections


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
