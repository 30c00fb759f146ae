"""The call page in a real browser: Debian's Chromium, headless, a WAV file as its microphone.

The page is served by the talk routes; the call runs on the embedded default (whisper, the
local LLM, Piper) over the WebRTC transport, like a call actor runs it. Asserts what a person
at the page would see and hear: their words in the transcript (heard by STT, not scripted),
agent audio measured by the page's analyser on the remote track, and the call stored as
completed. Measures end of caller speech -> first agent audio as the browser hears it.

    .venv/bin/python -m pytest -s tests/test_talk_chromium.py   # prints TALK_LATENCY {...}
    UPDATE_DOCS_SCREENSHOT=1 ...                                # also refreshes docs/talk_page.png
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import wave
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import tts

from tests.chromium import Chromium, chromium_binary
from tests.talk_harness import InProcessTalkCalls, serve_talk_page
from voice_ai.audio import pcm_of, resample_pcm, silence
from voice_ai.config import Settings
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transport import CallTransport
from voice_ai.records import CallRecord

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(chromium_binary() is None,
                       reason="Debian chromium is not installed here "
                              "(make system-deps installs chromium chromium-driver)"),
]

ROOT = Path(__file__).resolve().parent.parent
CALLER_LINE = "Hi, I would like to book an appointment for Tuesday morning."
WAV_RATE = 48_000
LEAD_SILENCE_S = 6.0  # the page connects and the agent greets before the caller speaks


async def _caller_wav(path: Path, voice: tts.TTS[Any]) -> float:
    """The caller's microphone: silence, the line spoken by Piper, then silence. Returns the
    second at which the caller stops speaking, from the start of the file."""
    async with voice.synthesize(CALLER_LINE) as stream:
        pcm = pcm_of([event.frame async for event in stream])
    speech = resample_pcm(pcm, voice.sample_rate, WAV_RATE)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(WAV_RATE)
        w.writeframes(silence(LEAD_SILENCE_S, WAV_RATE) + speech + silence(20.0, WAV_RATE))
    return LEAD_SILENCE_S + len(speech) / 2 / WAV_RATE


def _stored(db: Path, call_id: str) -> tuple[str, str, str, int]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT outcome, end_reason, direction FROM calls WHERE call_id = ?",
                           (call_id,)).fetchone()
        turns = conn.execute("SELECT COUNT(*) FROM turns WHERE call_id = ?",
                             (call_id,)).fetchone()[0]
    assert row is not None, f"call {call_id} not in the store"
    return row[0], row[1], row[2], int(turns)


async def test_a_browser_calls_the_agent_through_the_page(tmp_path: Path) -> None:
    from tests.engines import local_call_providers
    from voice_ai.pipeline.session import CallSession
    from voice_ai.store.call_store import CallStore

    settings = Settings(_env_file=None, db_path=tmp_path / "voice_ai.db",  # type: ignore[call-arg]
                        data_dir=tmp_path, log_dir=tmp_path / "logs")
    providers, voice = await local_call_providers(settings)
    store = CallStore(settings.db_path)

    async def run_call(spec: CallSpec, transport: CallTransport) -> CallRecord:
        session = CallSession(settings, providers, call_id=spec.call_id)
        return await session.run(transport, admitted_at=spec.admitted_at)

    calls = InProcessTalkCalls(settings, run_call, store.write_call)
    wav = tmp_path / "caller.wav"
    await _caller_wav(wav, voice)
    started = time.monotonic()
    async with serve_talk_page(settings, calls) as base, \
            Chromium.launch(f"{base}/talk", mic_wav=wav) as page:
        await page.wait_for("document.readyState === 'complete' && !!window.talk", timeout_s=10)
        await page.evaluate("document.querySelector('#call').click()", user_gesture=True)
        await page.wait_for("window.talk.state === 'connected'", timeout_s=10)
        said = await page.wait_for(
            "window.talk.transcript.filter(l => l.role === 'caller').map(l => l.text).join(' ')",
            timeout_s=25)
        heard = await page.wait_for("window.talk.heard.length > 0 && window.talk.heard",
                                    timeout_s=15)
        reply = await page.wait_for(
            "window.talk.transcript.length > 2 && window.talk.transcript.at(-1).role === 'agent'"
            " && window.talk.transcript.at(-1).text", timeout_s=15)
        turns = await page.wait_for("window.talk.turns.length > 0 && window.talk.turns",
                                    timeout_s=10)
        peak_db = await page.evaluate("window.talk.agentPeakDb")
        transcript = await page.evaluate("window.talk.transcript")
        marks = await page.evaluate("window.talk.marks")
        await page.evaluate("document.querySelector('#hangup').click()", user_gesture=True)
        await page.wait_for("window.talk.state === 'ended'", timeout_s=5)
        png = await page.screenshot()
        call_id = await page.evaluate("window.talk.callId")
        await calls.wait_idle(15)
    store.close()

    latency = {
        "heard_ms": heard, "agent_e2e_ms": [t["e2e_ms"] for t in turns],
        "stt_ms": [t["stt_ms"] for t in turns], "llm_ms": [t["llm_ms"] for t in turns],
        "tts_ms": [t["tts_ms"] for t in turns], "caller_said": said, "agent_said": reply,
        "transcript": transcript, "marks": marks, "test_s": round(time.monotonic() - started, 1)}
    print("TALK_LATENCY", json.dumps(latency))
    words = set(said.lower().replace(",", " ").replace(".", " ").split())
    assert {"appointment", "tuesday"} <= words, said  # real STT of the caller's voice
    assert reply.strip()
    assert peak_db > -30, f"agent audio at the browser peaked at {peak_db} dBFS"
    assert 0 < heard[0] < 5_000
    assert turns[0]["providers"] == {"stt": "whisper", "llm": "local", "tts": "piper"}
    outcome, end_reason, direction, stored_turns = _stored(settings.db_path, call_id)
    assert (outcome, end_reason, direction) == ("completed", "caller_hangup", "webrtc")
    assert stored_turns >= 1
    assert calls.active == 0

    assert png.startswith(b"\x89PNG") and len(png) < 300_000
    (tmp_path / "talk_page.png").write_bytes(png)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        (ROOT / "docs" / "talk_page.png").write_bytes(png)
