"""Browser calls through the whole system: Serve's POST /talk/offer -> the dispatcher admits the
call like any other -> a warm call actor answers the SDP -> the call runs and is recorded.

An aiortc peer plays the browser (tests/webrtc_peer.py); the real browser is
tests/test_talk_chromium.py."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import ray

from tests.webrtc_peer import BrowserPeer
from voice_ai.webrtc.signalling import SdpAnswer

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]


async def _post_offer(base: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(
            f"{base}/talk/offer", data=body,
            headers={"Content-Type": "application/json"}) as reply:
        return reply.status, await reply.json()


async def _stored(db: Path, call_id: str, timeout_s: float) -> tuple[str, str, str]:
    """The call's (outcome, end_reason, direction) once its record is in the store."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT outcome, end_reason, direction FROM calls "
                               "WHERE call_id = ?", (call_id,)).fetchone()
        if row is not None:
            return str(row[0]), str(row[1]), str(row[2])
        await asyncio.sleep(0.2)
    raise AssertionError(f"call {call_id} never reached the store")


def _status(local_system: Any) -> Any:
    return ray.get(local_system.handles.dispatcher.status.remote(), timeout=30)


async def test_a_browser_call_is_admitted_answered_by_a_call_actor_and_recorded(
    local_system: Any, system_settings: Any
) -> None:
    base = f"http://127.0.0.1:{system_settings.http_port}"
    before = _status(local_system)

    status, body = await _post_offer(base, b'{"type": "offer", "sdp": "hello"}')
    assert status == 400 and "v=0" in body["detail"]
    assert _status(local_system)["accepted_total"] == before["accepted_total"]  # started nothing

    browser = BrowserPeer()
    offer = await browser.offer()
    status, body = await _post_offer(base, json.dumps({"type": "offer",
                                                       "sdp": offer.sdp}).encode())
    assert status == 200, body
    assert body["status"] == "accepted"
    await browser.answer(SdpAnswer(**body["answer"]))
    greeting = await browser.message("transcript", timeout_s=30)
    assert greeting["role"] == "agent" and greeting["text"] == system_settings.greeting
    assert browser.loud_at, "the greeting was not heard at the browser"
    browser.channel.send(json.dumps({"type": "hangup"}))
    end = await browser.message("end", timeout_s=10)
    assert end["reason"] == "caller_hangup"
    await browser.close()
    assert await _stored(system_settings.db_path, body["call_id"], 30) == (
        "completed", "caller_hangup", "webrtc")


async def test_an_abandoned_offer_frees_its_admission_slot(
    local_system: Any, system_settings: Any
) -> None:
    """The page never connects (closed tab): WEBRTC_ICE_TIMEOUT_S (2 s in these settings)."""
    base = f"http://127.0.0.1:{system_settings.http_port}"
    browser = BrowserPeer()
    offer = await browser.offer()
    status, body = await _post_offer(base, json.dumps({"type": "offer",
                                                       "sdp": offer.sdp}).encode())
    assert status == 200
    assert body["call_id"] in _status(local_system)["active_call_ids"]
    assert await _stored(system_settings.db_path, body["call_id"], 30) == (
        "failed", "timeout", "webrtc")
    await browser.close()
    for _ in range(50):
        if body["call_id"] not in _status(local_system)["active_call_ids"]:
            break
        await asyncio.sleep(0.2)
    assert body["call_id"] not in _status(local_system)["active_call_ids"]
