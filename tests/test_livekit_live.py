"""Live checks against a real LiveKit server. Skipped unless LIVEKIT_URL, LIVEKIT_API_KEY and
LIVEKIT_API_SECRET are set. See docs/telephony.md: ``livekit-server --dev`` then

    LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret \\
        .venv/bin/python -m pytest -m live tests/test_livekit_live.py

A dev server has no SIP service, so a standard participant plays the caller (picked by
identity) and the SIP provisioning test skips itself when the server has no SIP support.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from datetime import timedelta

import pytest
from livekit import api, rtc
from livekit.agents import AgentSession

from voice_ai.config import Settings
from voice_ai.records import EndReason
from voice_ai.telephony.credentials import open_livekit_api
from voice_ai.telephony.livekit_transport import (
    LiveKitTransport,
    busy_tone_frames,
    play_busy_and_hangup,
)

_NEEDED = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
_MISSING = [name for name in _NEEDED if not os.environ.get(name)]

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"live LiveKit test: set {', '.join(_MISSING)} (see docs/telephony.md)",
    ),
]


def _settings() -> Settings:
    return Settings(  # type: ignore[call-arg]  # pydantic-settings kwarg
        _env_file=None,
        livekit_url=os.environ["LIVEKIT_URL"],
        livekit_api_key=os.environ["LIVEKIT_API_KEY"],
        livekit_api_secret=os.environ["LIVEKIT_API_SECRET"],
        max_call_duration_s=60,
    )


async def _join_as_caller(settings: Settings, room_name: str) -> tuple[rtc.Room, rtc.AudioSource]:
    secret = settings.livekit_api_secret.get_secret_value() if settings.livekit_api_secret else ""
    token = (
        api.AccessToken(settings.livekit_api_key, secret)
        .with_identity("caller-live")
        .with_grants(api.VideoGrants(room_join=True, room=room_name))
        .with_ttl(timedelta(minutes=5))
        .to_jwt()
    )
    room = rtc.Room()
    await room.connect(settings.livekit_url or "", token)
    source = rtc.AudioSource(48_000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("caller-mic", source)
    await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    return room, source


async def _agent_track_frames(caller: rtc.Room, count: int) -> int:
    """Wait for the agent's track on the caller's side and count non-silent frames."""
    track_ready: asyncio.Future[rtc.Track] = asyncio.get_running_loop().create_future()

    def on_subscribed(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and not track_ready.done():
            track_ready.set_result(track)

    caller.on("track_subscribed", on_subscribed)
    for participant in caller.remote_participants.values():
        for publication in participant.track_publications.values():
            if publication.track is not None:
                on_subscribed(publication.track)
    stream = rtc.AudioStream.from_track(track=await asyncio.wait_for(track_ready, 10))
    loud = 0
    async for event in stream:
        if max(abs(s) for s in event.frame.data) > 500:
            loud += 1
            if loud >= count:
                break
    await stream.aclose()
    return loud


async def test_agent_hears_the_caller_speaks_presses_keys_and_hangs_up() -> None:
    settings = _settings()
    room_name = f"call-live-{secrets.token_hex(4)}"
    caller, caller_source = await _join_as_caller(settings, room_name)
    transport = LiveKitTransport(settings, room_name, caller_identity="caller-live",
                                 caller_timeout_s=10)
    session: AgentSession[None] = AgentSession()
    try:
        await transport.connect()
        assert transport.caller_identity == "caller-live"
        await transport.attach(session)  # RoomIO: caller's track in, agent's track out
        await asyncio.wait_for(transport.room_io.wait_for_ready(), 10)

        async def caller_speaks() -> None:
            for frame in busy_tone_frames(48_000, duration_s=2.0, cadence_s=10.0):
                await caller_source.capture_frame(frame)

        speaking = asyncio.create_task(caller_speaks())
        audio_in = session.input.audio
        assert audio_in is not None
        heard = [await asyncio.wait_for(anext(audio_in), 10) for _ in range(20)]
        assert all(f.sample_rate == 24_000 for f in heard)
        assert any(max(abs(s) for s in f.data) > 500 for f in heard)
        await speaking

        listening = asyncio.create_task(_agent_track_frames(caller, count=10))
        for frame in busy_tone_frames(24_000, duration_s=1.0, cadence_s=10):
            await transport.audio_output.capture_frame(frame)
        transport.audio_output.flush()
        await asyncio.wait_for(transport.audio_output.wait_for_playout(), 10)
        assert await asyncio.wait_for(listening, 10) >= 10

        keys: list[str] = []
        caller.on("sip_dtmf_received", lambda ev: keys.append(ev.digit))
        await transport.send_dtmf("1#")
        for _ in range(50):
            if len(keys) == 2:
                break
            await asyncio.sleep(0.1)
        assert keys == ["1", "#"]

        caller_gone = asyncio.Event()
        caller.on("disconnected", lambda *_: caller_gone.set())
        await transport.hangup()
        await asyncio.wait_for(caller_gone.wait(), 10)  # removed by the server
        assert await transport.wait_ended() is EndReason.AGENT_HANGUP
    finally:
        await transport.aclose()
        await caller.disconnect()


async def test_busy_path_plays_the_tone_then_removes_the_caller() -> None:
    settings = _settings()
    room_name = f"call-live-{secrets.token_hex(4)}"
    caller, _ = await _join_as_caller(settings, room_name)
    try:
        listening = asyncio.create_task(_agent_track_frames(caller, count=10))
        caller_gone = asyncio.Event()
        caller.on("disconnected", lambda *_: caller_gone.set())
        reason = await play_busy_and_hangup(settings, room_name, caller_identity="caller-live")
        assert reason is EndReason.REJECTED_BUSY
        assert await asyncio.wait_for(listening, 10) >= 10
        await asyncio.wait_for(caller_gone.wait(), 10)
    finally:
        await caller.disconnect()


async def test_caller_leaving_ends_the_call() -> None:
    settings = _settings()
    room_name = f"call-live-{secrets.token_hex(4)}"
    caller, _ = await _join_as_caller(settings, room_name)
    transport = LiveKitTransport(settings, room_name, caller_identity="caller-live",
                                 caller_timeout_s=10)
    try:
        await transport.connect()
        await caller.disconnect()
        assert await asyncio.wait_for(transport.wait_ended(), 15) is EndReason.CALLER_HANGUP
    finally:
        await transport.aclose()


async def test_no_caller_times_out() -> None:
    transport = LiveKitTransport(_settings(), f"call-live-{secrets.token_hex(4)}",
                                 caller_identity="nobody", caller_timeout_s=1)
    try:
        await transport.connect()
        assert await transport.wait_ended() is EndReason.TIMEOUT
    finally:
        await transport.aclose()


async def test_sip_listing_works_or_the_server_has_no_sip() -> None:
    lk = open_livekit_api(_settings())
    try:
        trunks = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    except api.ServerError as e:
        pytest.skip(f"this LiveKit server has no SIP API ({e.code}); dev mode needs Redis + SIP")
    finally:
        await lk.aclose()
    assert trunks is not None
