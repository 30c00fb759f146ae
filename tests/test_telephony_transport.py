"""LiveKitTransport with no LiveKit server, using the real SDK objects: livekit-agents'
``RoomIO`` wired into a real ``AgentSession``, ``rtc.Room``'s event emitter for the caller's
comings and goings, real audio tracks and streams, and the loopback Twirp fake for
RemoveParticipant and TransferSIPParticipant. Audio out through a subscribed track needs a
server: tests/test_livekit_live.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from livekit import api, rtc
from livekit.agents import AgentSession
from livekit.rtc._proto import handle_pb2, participant_pb2, track_pb2

from tests.fakes.livekit_server import FakeLiveKitServer
from tests.telephony_helpers import API_KEY, API_SECRET, telephony_settings
from voice_ai.audio import rms
from voice_ai.pipeline.transport import TransportActionError
from voice_ai.records import CallOutcome, EndReason
from voice_ai.telephony.livekit_transport import (
    AGENT_TRACK_NAME,
    LiveKitTransport,
    busy_tone_frames,
    room_options,
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


def _mic_publication(sid: str = "TR_caller_mic") -> rtc.RemoteTrackPublication:
    owned = track_pb2.OwnedTrackPublication(
        handle=handle_pb2.FfiOwnedHandle(id=0),
        info=track_pb2.TrackPublicationInfo(sid=sid, name="mic", kind=track_pb2.KIND_AUDIO,
                                            source=track_pb2.SOURCE_MICROPHONE),
    )
    return rtc.RemoteTrackPublication(owned)


def _api(server: FakeLiveKitServer) -> Callable[[], api.LiveKitAPI]:
    return lambda: api.LiveKitAPI(server.url, API_KEY, API_SECRET, failover=False)


@pytest.fixture
def make_transport() -> Callable[..., LiveKitTransport]:
    def make(**kwargs: object) -> LiveKitTransport:
        settings = kwargs.pop("settings", telephony_settings())
        return LiveKitTransport(settings, ROOM, **kwargs)  # type: ignore[arg-type]
    return make


# --- what RoomIO is asked to do -------------------------------------------------------------
def test_room_options_follow_the_caller_in_20_ms_frames_with_no_text() -> None:
    options = room_options("sip_caller", 24_000)
    assert options.participant_identity == "sip_caller"
    assert rtc.ParticipantKind.PARTICIPANT_KIND_SIP in (options.participant_kinds or [])
    audio_in = options.get_audio_input_options()
    assert audio_in is not None
    assert (audio_in.sample_rate, audio_in.frame_size_ms) == (24_000, 20)
    assert audio_in.pre_connect_audio is False and audio_in.auto_gain_control is False
    audio_out = options.get_audio_output_options()
    assert audio_out is not None and audio_out.track_name == AGENT_TRACK_NAME
    assert options.get_text_output_options() is None
    assert options.get_text_input_options() is None
    assert options.close_on_disconnect is False  # the transport says how the call ended


async def test_attach_wires_roomio_and_the_callers_audio_reaches_the_session(
    make_transport: Callable[..., LiveKitTransport],
) -> None:
    transport = make_transport(caller_identity="sip_caller")
    session: AgentSession[None] = AgentSession()
    await transport.attach(session)
    room_io = transport.room_io
    assert session.output.audio is room_io.audio_output
    assert session.output.audio is not None and session.output.audio.sample_rate == 24_000
    assert session.input.audio is room_io.audio_input  # no watchdog on this transport
    with pytest.raises(RuntimeError, match="already called"):
        await transport.attach(session)

    # RoomIO links the caller once the room is connected; with no server, link by hand
    room_io.set_participant("sip_caller")
    source = rtc.AudioSource(48_000, 1)  # the caller's phone leg, at another rate
    track = rtc.LocalAudioTrack.create_audio_track("caller", source)
    transport.room.emit("track_subscribed", track, _mic_publication(), _remote("sip_caller"))

    async def speak() -> None:
        for frame in busy_tone_frames(48_000, duration_s=0.3, cadence_s=10.0):
            await source.capture_frame(frame)

    speaker = asyncio.create_task(speak())
    audio_in = session.input.audio
    assert audio_in is not None
    heard = [await asyncio.wait_for(anext(audio_in), 2) for _ in range(5)]
    await speaker
    assert all(f.sample_rate == 24_000 and f.samples_per_channel == 480 for f in heard)
    assert max(rms(f.data.tobytes()) for f in heard) > 1000  # the tone, not silence
    await transport.aclose()
    await source.aclose()


# --- who the caller is and how the call ends ----------------------------------------------
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
        transport = LiveKitTransport(telephony_settings(server.url), ROOM,
                                     api_factory=_api(server))
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
    assert [r.status for r in server.requests] == [200]


async def test_hangup_when_the_caller_already_left_the_server_is_fine() -> None:
    async with FakeLiveKitServer() as server:
        transport = LiveKitTransport(telephony_settings(server.url), ROOM,
                                     api_factory=_api(server))
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


async def test_audio_ports_exist_only_once_roomio_is_wired(
    make_transport: Callable[..., LiveKitTransport],
) -> None:
    transport = make_transport()
    with pytest.raises(RuntimeError, match="attach"):
        _ = transport.audio_input
    await transport.aclose()


# --- SIP actions -----------------------------------------------------------------------------
async def test_transfer_hands_the_caller_over_and_the_call_ends_transferred() -> None:
    async with FakeLiveKitServer() as server:
        server.add_participant(ROOM, "sip_caller", sip_caller=True)
        transport = LiveKitTransport(telephony_settings(server.url), ROOM,
                                     api_factory=_api(server))
        transport.room.emit("participant_connected", _remote("sip_caller"))
        await transport.transfer("+1 555 010 0999")
        transport.room.emit("participant_disconnected", _remote("sip_caller"))  # leg moved
        reason = await asyncio.wait_for(transport.wait_ended(), 1)
        await transport.hangup()  # nothing left to remove
        await transport.aclose()

    assert reason is EndReason.TRANSFERRED and reason.outcome is CallOutcome.TRANSFERRED
    (transfer,) = server.calls("TransferSIPParticipant")
    assert (transfer.room_name, transfer.participant_identity) == (ROOM, "sip_caller")
    assert transfer.transfer_to == "tel:+15550100999"
    assert "sip_caller" not in server.state.participants[ROOM]
    assert server.calls("RemoveParticipant") == []


async def test_a_transfer_that_does_not_connect_leaves_the_call_going() -> None:
    from livekit.protocol import sip

    async with FakeLiveKitServer() as server:
        server.add_participant(ROOM, "sip_caller", sip_caller=True)
        server.transfer_status = sip.SIPTransferStatus.STS_TRANSFER_FAILED
        transport = LiveKitTransport(telephony_settings(server.url), ROOM,
                                     api_factory=_api(server))
        transport.room.emit("participant_connected", _remote("sip_caller"))
        with pytest.raises(TransportActionError, match="did not connect"):
            await transport.transfer("+15550100999")
        assert not transport.ended
        server.fail_next("TransferSIPParticipant", 403, "permission_denied", "no SIP grant")
        with pytest.raises(TransportActionError, match="refused the transfer: permission_denied"):
            await transport.transfer("+15550100999")
        assert not transport.ended
        transport.room.emit("participant_disconnected", _remote("sip_caller"))
        assert await transport.wait_ended() is EndReason.CALLER_HANGUP
        await transport.aclose()


async def test_bad_transfer_requests_are_refused_before_any_request(
    make_transport: Callable[..., LiveKitTransport],
) -> None:
    transport = make_transport()
    with pytest.raises(TransportActionError, match="transfer number"):
        await transport.transfer("call Bob")
    with pytest.raises(TransportActionError, match="no caller in the room"):
        await transport.transfer("+15550100999")
    await transport.aclose()


async def test_dtmf_needs_valid_keys_and_a_connected_room(
    make_transport: Callable[..., LiveKitTransport],
) -> None:
    transport = make_transport()
    with pytest.raises(TransportActionError, match=r"not DTMF keys: 'X'"):
        await transport.send_dtmf("12X")
    with pytest.raises(TransportActionError, match="not connected"):
        await transport.send_dtmf("1#")
    await transport.aclose()


def test_busy_tone_is_on_then_off() -> None:
    frames = busy_tone_frames(24_000, duration_s=1.0, cadence_s=0.5)
    assert sum(f.duration for f in frames) == pytest.approx(1.0)
    assert all(f.sample_rate == 24_000 and f.num_channels == 1 for f in frames)
    assert max(abs(s) for s in frames[0].data) > 1000  # tone
    assert max(abs(s) for s in frames[-1].data) == 0  # pause
