"""Outbound dialling against the loopback fake of LiveKit's Twirp API."""

from __future__ import annotations

import pytest
from livekit import api

from tests.fakes.livekit_server import FakeLiveKitServer
from tests.telephony_helpers import API_KEY, API_SECRET, telephony_settings
from voice_ai.telephony.outbound import DialError, dial_out
from voice_ai.telephony.phone import InvalidPhoneNumber

pytestmark = pytest.mark.integration

TRUNK = "ST_outbound_test"


async def test_dial_creates_the_room_then_the_sip_participant() -> None:
    async with FakeLiveKitServer() as server:
        settings = telephony_settings(server.url)
        lk = api.LiveKitAPI(server.url, API_KEY, API_SECRET, failover=False)
        try:
            call = await dial_out(lk, settings, "+15550100067", TRUNK)
        finally:
            await lk.aclose()

    assert server.writes == ["CreateRoom", "CreateSIPParticipant"]
    (room_req,) = server.calls("CreateRoom")
    (dial_req,) = server.calls("CreateSIPParticipant")
    assert room_req.name == call.room and call.room.startswith("call-out-")
    assert dial_req.room_name == call.room
    assert dial_req.sip_trunk_id == TRUNK
    assert dial_req.sip_call_to == "+15550100067"
    assert dial_req.participant_identity == call.participant_identity == f"sip-{call.room}"
    assert "5550100" not in call.participant_identity  # identities end up in logs
    assert call.to_masked == "+1********67"
    assert call.sip_call_id.startswith("SCL_")
    assert call.participant_identity in server.state.participants[call.room]


async def test_invalid_number_sends_nothing() -> None:
    async with FakeLiveKitServer() as server:
        lk = api.LiveKitAPI(server.url, API_KEY, API_SECRET, failover=False)
        try:
            with pytest.raises(InvalidPhoneNumber):
                await dial_out(lk, telephony_settings(server.url), "5550100067", TRUNK)
        finally:
            await lk.aclose()
    assert server.requests == []


async def test_livekit_refusal_becomes_a_dial_error_without_the_number() -> None:
    async with FakeLiveKitServer() as server:
        server.fail_next("CreateSIPParticipant", 400, "invalid_argument",
                         "cannot dial +15550100067: Busy Here",
                         meta={"sip_status_code": "486", "sip_status": "Busy Here"})
        lk = api.LiveKitAPI(server.url, API_KEY, API_SECRET, failover=False)
        try:
            with pytest.raises(DialError) as info:
                await dial_out(lk, telephony_settings(server.url), "+15550100067", TRUNK)
        finally:
            await lk.aclose()
    assert "Busy Here" in str(info.value)
    assert "5550100067" not in str(info.value)
    assert info.value.status == 400


async def test_unknown_trunk_is_a_dial_error() -> None:
    async with FakeLiveKitServer() as server:
        lk = api.LiveKitAPI(server.url, API_KEY, API_SECRET, failover=False)
        try:
            with pytest.raises(DialError, match="not_found"):
                await dial_out(lk, telephony_settings(server.url), "+15550100067", "ST_nope")
        finally:
            await lk.aclose()


async def test_unreachable_livekit_is_a_dial_error() -> None:
    lk = api.LiveKitAPI("http://127.0.0.1:9", API_KEY, API_SECRET, failover=False)
    try:
        with pytest.raises(DialError, match="unreachable"):
            await dial_out(lk, telephony_settings(), "+15550100067", TRUNK)
    finally:
        await lk.aclose()


@pytest.mark.parametrize("prefixes", ["", "+44"])
async def test_a_destination_outside_the_allowed_prefixes_is_never_dialled(prefixes: str) -> None:
    from voice_ai.telephony.outbound import DestinationNotAllowed

    async with FakeLiveKitServer() as server:
        lk = api.LiveKitAPI(server.url, API_KEY, API_SECRET, failover=False)
        try:
            with pytest.raises(DestinationNotAllowed, match="OUTBOUND_ALLOWED_PREFIXES") as e:
                await dial_out(lk, telephony_settings(
                    server.url, outbound_allowed_prefixes=prefixes), "+15550100067", TRUNK)
        finally:
            await lk.aclose()
    assert "5550100067" not in str(e.value)
    assert server.requests == []
