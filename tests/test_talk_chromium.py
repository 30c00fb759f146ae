"""The call page in a real browser: Debian's Chromium, headless, a WAV file as its microphone.

The page is the running system's (the shared ``local_system``: Serve's /talk, the dispatcher
admits the offer, a warm call actor answers it and runs the call on the embedded default:
whisper, the receptionist, Piper). Asserts what a person at the page would see and hear: their
words in the transcript (heard by STT, not scripted), agent audio measured by the page's
analyser on the remote track, and the call stored as completed. Measures end of caller speech
-> first agent audio as the browser hears it.

    .venv/bin/python -m pytest -s tests/test_talk_chromium.py   # prints TALK_LATENCY {...}
    UPDATE_DOCS_SCREENSHOT=1 ...                                # also refreshes docs/talk_page.png
    # several calls on one system start: add --keep-duplicates and repeat the path
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import wave
from pathlib import Path
from typing import Any

import pytest
import ray

from tests.chromium import Chromium, chromium_binary
from voice_ai.audio import pcm_of, resample_pcm, silence
from voice_ai.config import Settings
from voice_ai.providers.factory import build_tts_engine, tts_frame_ms
from voice_ai.providers.local.piper import PiperTTS

pytestmark = [
    pytest.mark.ray,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(chromium_binary() is None,
                       reason="Debian chromium is not installed here "
                              "(make system-deps installs chromium chromium-driver)"),
]

ROOT = Path(__file__).resolve().parent.parent
CALLER_LINE = "Hi, I would like to book an appointment for Tuesday morning."
WAV_RATE = 48_000
LEAD_SILENCE_S = 8.0  # the page connects and the greeting (~3 s) ends before the caller speaks,
#                      with room for a slow start on a loaded machine (else the caller barges in)


async def _caller_wav(path: Path) -> float:
    """The caller's microphone: silence, the line spoken by Piper, then silence. Returns the
    second at which the caller stops speaking, from the start of the file."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    engine = build_tts_engine(settings)
    voice = PiperTTS(engine, frame_ms=tts_frame_ms(settings, engine.sample_rate))
    async with voice.synthesize(CALLER_LINE) as stream:
        pcm = pcm_of([event.frame async for event in stream])
    speech = resample_pcm(pcm, voice.sample_rate, WAV_RATE)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(WAV_RATE)
        w.writeframes(silence(LEAD_SILENCE_S, WAV_RATE) + speech + silence(20.0, WAV_RATE))
    return LEAD_SILENCE_S + len(speech) / 2 / WAV_RATE


async def _stored(db: Path, call_id: str, timeout_s: float = 30) -> tuple[str, str, str, int]:
    """The call's (outcome, end_reason, direction, turns) once the store writer has it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT outcome, end_reason, direction FROM calls "
                               "WHERE call_id = ?", (call_id,)).fetchone()
            turns = conn.execute("SELECT COUNT(*) FROM turns WHERE call_id = ?",
                                 (call_id,)).fetchone()[0]
        if row is not None:
            return row[0], row[1], row[2], int(turns)
        await asyncio.sleep(0.2)
    raise AssertionError(f"call {call_id} never reached the store")


async def test_a_browser_calls_the_agent_through_the_page(
    tmp_path: Path, local_system: Any, system_settings: Any
) -> None:
    wav = tmp_path / "caller.wav"
    await _caller_wav(wav)
    base = f"http://127.0.0.1:{system_settings.http_port}"
    started = time.monotonic()
    async with Chromium.launch(f"{base}/", mic_wav=wav) as page:  # / redirects to /talk
        await page.wait_for("document.readyState === 'complete' && !!window.talk", timeout_s=10)
        await page.evaluate("document.querySelector('#call').click()", user_gesture=True)
        await page.wait_for("window.talk.state === 'connected'", timeout_s=15)
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
    outcome, end_reason, direction, stored_turns = await _stored(system_settings.db_path,
                                                                 call_id)
    assert (outcome, end_reason, direction) == ("completed", "caller_hangup", "webrtc")
    assert stored_turns >= 1
    for _ in range(50):  # its admission slot is free again once the dispatcher hears the end
        status = ray.get(local_system.handles.dispatcher.status.remote(), timeout=30)
        if call_id not in status["active_call_ids"]:
            break
        await asyncio.sleep(0.2)
    assert call_id not in status["active_call_ids"]

    assert png.startswith(b"\x89PNG") and len(png) < 300_000
    (tmp_path / "talk_page.png").write_bytes(png)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        (ROOT / "docs" / "talk_page.png").write_bytes(png)
