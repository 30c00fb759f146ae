"""LiveKitTransport pieces that work with no LiveKit server, using the real rtc objects:
AudioSource/AudioFrame/AudioResampler/AudioStream for audio, rtc.Room's event emitter for the
caller's comings and goings, and the loopback Twirp fake for RemoveParticipant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from livekit import api, rtc
from livekit.rtc._proto import handle_pb2, participant_pb2

from tests.fakes.livekit_server import FakeLiveKitServer
from tests.telephony_helpers import API_KEY, API_SECRET, telephony_settings
from voice_ai.records import EndReason
from voice_ai.telephony.livekit_transport import LiveKitTransport
from voice_ai.telephony.room_audio import (
    ParticipantAudioInput,
    RoomAudioOutput,
    busy_tone_frames,
    say,
)

pytestmark = pytest.mark.unit

ROOM = "call-_+15550100067_a1"


def _remote(identity: str, *, sip: bool = True) -> rtc.RemoteParticipant:
    kind = (participant_pb2.ParticipantKind.PARTICIPANT_KIND_SIP if sip
            else participant_pb2.ParticipantKind.PARTICIPANT_KIND_STANDARD)
    owned = participant_pb2.OwnedParticipant(
        handle=handle_pb2.FfiOwnedHandle(id=0),  # 0: no native object behind it
        info=participant_pb2.ParticipantInfo(sid=f"PA_{identity}", identity=identity, kind=kind),
    )
    return rtc.RemoteParticipant(owned)


def _tone(sample_rate: int, seconds: float) -> list[rtc.AudioFrame]:
    return busy_tone_frames(sample_rate, duration_s=seconds, cadence_s=10.0)


# --- audio out ---------------------------------------------------------------------------
async def test_output_reports_start_then_finish_after_the_audio_played() -> None:
    output = RoomAudioOutput(rtc.AudioSource(24_000, 1))
    started: list[float] = []
    output.on("playback_started", lambda ev: started.append(ev.created_at))
    t0 = time.monotonic()
    for frame in _tone(24_000, 0.3):
        await output.capture_frame(frame)
    output.flush()
    finished = await asyncio.wait_for(output.wait_for_playout(), 5)
    elapsed = time.monotonic() - t0
    assert len(started) == 1
    assert finished.interrupted is False
    assert finished.playback_position == pytest.approx(0.3, abs=0.01)
    assert elapsed >= 0.25  # not before the audio could have played at real time
    await output.aclose()


async def test_clear_buffer_interrupts_the_segment() -> None:
    output = RoomAudioOutput(rtc.AudioSource(24_000, 1))
    for frame in _tone(24_000, 0.6):
        await output.capture_frame(frame)
    output.flush()
    output.clear_buffer()
    finished = await asyncio.wait_for(output.wait_for_playout(), 1)
    assert finished.interrupted is True
    assert 0.0 <= finished.playback_position < 0.6
    await output.aclose()


async def test_clear_buffer_before_flush_interrupts_too() -> None:
    output = RoomAudioOutput(rtc.AudioSource(24_000, 1))
    for frame in _tone(24_000, 0.1):
        await output.capture_frame(frame)
    output.clear_buffer()
    finished = await asyncio.wait_for(output.wait_for_playout(), 1)
    assert finished.interrupted is True


async def test_output_resamples_frames_of_another_rate() -> None:
    source = rtc.AudioSource(24_000, 1)
    output = RoomAudioOutput(source)
    assert output.sample_rate == 24_000
    await say(output, _tone(16_000, 0.2))  # e.g. a 16 kHz TTS
    event = await output.wait_for_playout()
    assert event.playback_position == pytest.approx(0.2, abs=0.03)
    await output.aclose()


def test_busy_tone_is_on_then_off() -> None:
    frames = busy_tone_frames(24_000, duration_s=1.0, cadence_s=0.5)
    assert sum(f.duration for f in frames) == pytest.approx(1.0)
    assert all(f.sample_rate == 24_000 and f.num_channels == 1 for f in frames)
    assert max(abs(s) for s in frames[0].data) > 1000  # tone
    assert max(abs(s) for s in frames[-1].data) == 0  # pause


# --- audio in ----------------------------------------------------------------------------
async def test_input_yields_the_track_audio_resampled_then_ends_on_close() -> None:
    source = rtc.AudioSource(48_000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("caller", source)
    audio_in = ParticipantAudioInput(sample_rate=16_000)
    audio_in.attach_track(track)

    async def speak() -> None:
        for frame in _tone(48_000, 0.3):
            await source.capture_frame(frame)

    speaker = asyncio.create_task(speak())
    received = [await asyncio.wait_for(anext(audio_in), 2) for _ in range(5)]
    assert all(f.sample_rate == 16_000 and f.num_channels == 1 for f in received)
    assert any(max(abs(s) for s in f.data) > 1000 for f in received)
    await speaker
    await audio_in.aclose()
    await source.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(audio_in), 2)


async def test_input_waits_for_a_track_and_resamples_other_streams() -> None:
    audio_in = ParticipantAudioInput(sample_rate=24_000)

    async def events() -> object:
        for frame in _tone(8_000, 0.2):
            yield rtc.AudioFrameEvent(frame)

    pending = asyncio.ensure_future(anext(audio_in))
    await asyncio.sleep(0.01)
    assert not pending.done()  # no caller track yet
    audio_in.attach_stream(events())  # type: ignore[arg-type]
    first = await asyncio.wait_for(pending, 2)
    assert first.sample_rate == 24_000
    await audio_in.aclose()


# --- the transport -------------------------------------------------------------------------
@pytest.fixture
def make_transport() -> Callable[..., LiveKitTransport]:
    def make(**kwargs: object) -> LiveKitTransport:
        settings = kwargs.pop("settings", telephony_settings())
        return LiveKitTransport(settings, ROOM, **kwargs)  # type: ignore[arg-type]
    return make


async def test_caller_hanging_up_ends_the_call(
    make_transport: Callable[..., LiveKitTransport],
) -> None:
    transport = make_transport()
    transport.room.emit("participant_connected", _remote("browser-user", sip=False))
    assert transport.caller_identity is None  # only the SIP participant is the caller
    caller = _remote("sip_caller")
    transport.room.emit("participant_connected", caller)
    assert transport.caller_identity == "sip_caller"
    transport.room.emit("participant_disconnected", _remote("browser-user", sip=False))
    assert not transport.ended
    transport.room.emit("participant_disconnected", caller)
    assert await asyncio.wait_for(transport.wait_ended(), 1) is EndReason.CALLER_HANGUP
    await transport.hangup()  # safe after the caller left: nothing to remove
    await transport.aclose()


async def test_expected_identity_picks_the_caller(
    make_transport: Callable[..., LiveKitTransport],
) -> None:
    transport = make_transport(caller_identity="sip-call-out-1")
    transport.room.emit("participant_connected", _remote("sip_someone_else"))
    transport.room.emit("participant_connected", _remote("sip-call-out-1"))
    assert transport.caller_identity == "sip-call-out-1"
    await transport.aclose()


async def test_agent_hangup_removes_the_sip_participant() -> None:
    async with FakeLiveKitServer() as server:
        server.add_participant(ROOM, "sip_caller", sip_caller=True)
        settings = telephony_settings(server.url)
        transport = LiveKitTransport(
            settings, ROOM,
            api_factory=lambda: api.LiveKitAPI(server.url, API_KEY, API_SECRET, failover=False))
        transport.room.emit("participant_connected", _remote("sip_caller"))
        await transport.hangup()
        await transport.hangup()  # idempotent
        transport.room.emit("participant_disconnected", _remote("sip_caller"))  # LiveKit's echo
        reason = await transport.wait_ended()
        await transport.aclose()

    assert reason is EndReason.AGENT_HANGUP
    (removed,) = server.calls("RemoveParticipant")
    assert (removed.room, removed.identity) == (ROOM, "sip_caller")
    assert "sip_caller" not in server.state.participants[ROOM]
    (request,) = server.requests
    assert request.status == 200


async def test_hangup_when_the_caller_already_left_the_server_is_fine() -> None:
    async with FakeLiveKitServer() as server:
        transport = LiveKitTransport(
            telephony_settings(server.url), ROOM,
            api_factory=lambda: api.LiveKitAPI(server.url, API_KEY, API_SECRET, failover=False))
        transport.room.emit("participant_connected", _remote("sip_caller"))
        await transport.hangup()  # LiveKit answers not_found: already gone
        await transport.aclose()
    assert [r.status for r in server.requests] == [404]


async def test_room_connection_lost_is_an_error(
    make_transport: Callable[..., LiveKitTransport],
) -> None:
    transport = make_transport()
    transport.room.emit("disconnected", rtc.DisconnectReason.SIGNAL_CLOSE)
    assert await transport.wait_ended() is EndReason.ERROR
    await transport.aclose()


async def test_calls_longer_than_the_maximum_time_out(
    make_transport: Callable[..., LiveKitTransport],
) -> None:
    transport = make_transport(settings=telephony_settings(max_call_duration_s=0.05))
    assert await transport.wait_ended() is EndReason.TIMEOUT
    await transport.aclose()


async def test_transport_audio_ports_are_livekit_agents_io(
    make_transport: Callable[..., LiveKitTransport],
) -> None:
    from livekit.agents.voice.io import AudioInput, AudioOutput

    transport = make_transport()
    assert isinstance(transport.audio_input, AudioInput)
    assert isinstance(transport.audio_output, AudioOutput)
    assert transport.audio_output.sample_rate == 24_000
    await transport.aclose()
