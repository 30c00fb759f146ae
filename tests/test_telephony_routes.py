"""The telephony HTTP routes through FastAPI's TestClient, LiveKit being the loopback fake."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from livekit import api

from deployments.telephony_routes import build_telephony_router
from tests.fakes.dispatcher import InMemoryDispatcher
from tests.fakes.livekit_server import FakeLiveKitServer, sign_webhook, webhook_json
from tests.telephony_helpers import CALLS_TOKEN, telephony_settings
from voice_ai.config import Settings
from voice_ai.records import EndReason
from voice_ai.telephony.credentials import open_livekit_api

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {CALLS_TOKEN}"}
TRUNK = "ST_outbound_test"


class Harness:
    def __init__(self, server: FakeLiveKitServer, settings: Settings, limit: int) -> None:
        self.server = server
        self.dispatcher = InMemoryDispatcher(limit)

        def factory() -> api.LiveKitAPI:
            return open_livekit_api(settings)

        app = FastAPI()
        app.include_router(build_telephony_router(settings, self.dispatcher, factory))
        self.client = TestClient(app)

    def hook(self, body: str, auth: str | None = "sign") -> Any:
        headers = {"Authorization": sign_webhook(body)} if auth == "sign" else (
            {"Authorization": auth} if auth else {})
        return self.client.post("/livekit/webhook", content=body, headers=headers)

    def call(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        headers = AUTH if headers is None else headers
        return self.client.post("/calls", json=payload, headers=headers)


@pytest.fixture
def harness() -> Iterator[Harness]:
    with FakeLiveKitServer().threaded() as server:
        yield Harness(server, telephony_settings(server.url), limit=2)


def _joined(room: str = "call-_+15550100067_a1") -> str:
    return webhook_json("participant_joined", room, "sip_caller", phone="+15550100067")


# --- webhook ----------------------------------------------------------------------------------
def test_signed_sip_join_admits_the_call(harness: Harness) -> None:
    response = harness.hook(_joined())
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "call_id": "call-0001",
                               "room": "call-_+15550100067_a1"}
    assert harness.dispatcher.started == [("inbound", "call-_+15550100067_a1", "+1********67")]


def test_a_repeated_webhook_never_starts_a_second_agent(harness: Harness) -> None:
    first = harness.hook(_joined()).json()
    again = harness.hook(_joined()).json()
    assert again == {**first, "status": "duplicate"}
    assert len(harness.dispatcher.started) == 1


def test_over_the_limit_the_call_is_rejected(harness: Harness) -> None:
    for room in ("call-a", "call-b"):
        assert harness.hook(_joined(room)).json()["status"] == "accepted"
    rejected = harness.hook(_joined("call-c")).json()
    assert rejected["status"] == "rejected"
    assert "busy" in rejected["reason"]
    assert harness.dispatcher.rejected == [("call-c", "+1********67")]
    assert [room for _, room, _ in harness.dispatcher.started] == ["call-a", "call-b"]


WRONG_SECRET = "wrong-secret-for-tests-0123456789"


@pytest.mark.parametrize("auth", [None, "", "Bearer nonsense",
                                  sign_webhook("{}", "devkey", WRONG_SECRET)])
def test_missing_or_bad_signature_is_401_and_dispatches_nothing(
    harness: Harness, auth: str | None
) -> None:
    response = harness.hook(_joined(), auth=auth)
    assert response.status_code == 401
    assert harness.dispatcher.admissions == {}


def test_tampered_body_is_401(harness: Harness) -> None:
    body = _joined()
    signature = sign_webhook(body)
    response = harness.hook(body.replace("call-_", "call-x"), auth=signature)
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid webhook signature"}
    assert harness.dispatcher.admissions == {}


def test_malformed_json_is_400(harness: Harness) -> None:
    response = harness.hook('{"event": "participant_joined", ')
    assert response.status_code == 400
    assert "not a LiveKit event" in response.json()["detail"]
    assert harness.dispatcher.admissions == {}


def test_unknown_event_types_are_ignored(harness: Harness) -> None:
    response = harness.hook('{"event": "track_published_v9"}')
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "event": "track_published_v9"}
    left = harness.hook(webhook_json("participant_left", "call-a", "sip_caller"))
    assert left.json() == {"status": "ignored", "event": "participant_left"}
    assert harness.dispatcher.admissions == {}


# --- calls API --------------------------------------------------------------------------------
def test_outbound_call_is_admitted_then_dialled(harness: Harness) -> None:
    response = harness.call({"to": "+15550100067", "trunk_id": TRUNK})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted" and body["call_id"] == "call-0001"
    assert body["to"] == "+1********67"
    assert harness.dispatcher.started == [("outbound", body["room"], "+1********67")]
    (dial,) = harness.server.calls("CreateSIPParticipant")
    assert (dial.sip_call_to, dial.sip_trunk_id, dial.room_name) == (
        "+15550100067", TRUNK, body["room"])
    assert [r.name for r in harness.server.calls("CreateRoom")] == [body["room"]]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": CALLS_TOKEN}])
def test_calls_api_needs_the_bearer_token(harness: Harness, headers: dict[str, str]) -> None:
    response = harness.call({"to": "+15550100067", "trunk_id": TRUNK}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert harness.server.requests == [] and harness.dispatcher.admissions == {}


def test_calls_api_is_closed_when_no_token_is_configured() -> None:
    with FakeLiveKitServer().threaded() as server:
        closed = Harness(server, telephony_settings(server.url, calls_api_token=None), limit=2)
        assert closed.call({"to": "+15550100067", "trunk_id": TRUNK}).status_code == 401


@pytest.mark.parametrize("to", ["5550100067", "+1 555 010 0067", "+0123", "", 15550100067])
def test_invalid_numbers_are_422_naming_the_field(harness: Harness, to: object) -> None:
    response = harness.call({"to": to, "trunk_id": TRUNK})
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["field"] == "to"
    assert body["detail"].startswith("to: ")
    assert harness.server.requests == [] and harness.dispatcher.admissions == {}


def test_missing_fields_and_bad_json_are_refused(harness: Harness) -> None:
    missing = harness.call({"to": "+15550100067"})
    assert missing.status_code == 422
    assert missing.json()["detail"] == "trunk_id: Field required"
    bad = harness.client.post("/calls", content="{not json", headers=AUTH)
    assert bad.status_code == 400
    assert harness.server.requests == []


def test_over_capacity_outbound_is_503_and_dials_nobody() -> None:
    with FakeLiveKitServer().threaded() as server:
        full = Harness(server, telephony_settings(server.url), limit=1)
        assert full.call({"to": "+15550100067", "trunk_id": TRUNK}).status_code == 202
        response = full.call({"to": "+15550100068", "trunk_id": TRUNK})
        assert response.status_code == 503
        assert response.json()["status"] == "rejected"
        assert len(server.calls("CreateSIPParticipant")) == 1


def test_a_refused_dial_is_502_and_frees_the_slot(harness: Harness) -> None:
    response = harness.call({"to": "+15550100067", "trunk_id": "ST_unknown"})
    assert response.status_code == 502
    assert "not_found" in response.json()["detail"]
    room = harness.dispatcher.started[0][1]
    assert harness.dispatcher.cancelled == [(room, EndReason.ERROR)]
    assert harness.dispatcher.active == set()


def test_without_livekit_configured_calls_are_503() -> None:
    settings = telephony_settings(livekit_url=None)
    dispatcher = InMemoryDispatcher(2)
    app = FastAPI()
    app.include_router(build_telephony_router(settings, dispatcher,
                                              lambda: open_livekit_api(settings)))
    response = TestClient(app).post("/calls", json={"to": "+15550100067", "trunk_id": TRUNK},
                                    headers=AUTH)
    assert response.status_code == 503
    assert "LIVEKIT_URL" in response.json()["detail"]
    assert dispatcher.admissions == {}
