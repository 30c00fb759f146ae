"""The public face's telephony routes through FastAPI's TestClient (the same app Serve runs,
built by ``build_public_api``), LiveKit being the loopback fake and the dispatcher in memory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from livekit import api

from deployments.public_face import build_public_api
from deployments.telephony_routes import TelephonyPorts
from tests.fakes.dispatcher import InMemoryDispatcher
from tests.fakes.livekit_server import FakeLiveKitServer, sign_webhook, webhook_json
from tests.telephony_helpers import CALLS_TOKEN, telephony_settings
from voice_ai.config import Settings
from voice_ai.records import EndReason
from voice_ai.telephony.credentials import open_livekit_api
from voice_ai.telephony.dispatch import Admission, DispatcherUnavailable
from voice_ai.telephony.rate_limit import RateLimiter

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {CALLS_TOKEN}"}
TRUNK = "ST_outbound_test"
ALLOW = {"outbound_allowed_prefixes": "+1555"}


class CountedRejections:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def webhook_rejected(self, reason: str) -> None:
        self.reasons.append(reason)


class Healthy:
    async def overall(self) -> str:
        return "healthy"


class Harness:
    def __init__(self, server: FakeLiveKitServer | None, settings: Settings, limit: int,
                 **ports: Any) -> None:
        self.server = server
        self.dispatcher = ports.pop("dispatcher", None) or InMemoryDispatcher(limit)
        self.rejections = CountedRejections()

        def factory() -> api.LiveKitAPI:
            return open_livekit_api(settings)

        telephony = TelephonyPorts(self.dispatcher, factory, rejections=self.rejections,
                                   **ports)
        self.client = TestClient(build_public_api(settings, telephony, Healthy()))

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
        yield Harness(server, telephony_settings(server.url, **ALLOW), limit=2)


def _joined(room: str = "call-_+15550100067_a1", **kw: Any) -> str:
    return webhook_json("participant_joined", room, "sip_caller", phone="+15550100067", **kw)


# --- the public face carries nothing else -----------------------------------------------------
@pytest.mark.parametrize("path", ["/health/detailed", "/metrics", "/docs", "/openapi.json",
                                  "/redoc"])
def test_internal_routes_are_not_on_the_public_face(harness: Harness, path: str) -> None:
    assert harness.client.get(path).status_code == 404


def test_plain_health_says_one_word(harness: Harness) -> None:
    response = harness.client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "healthy"}


# --- webhook ----------------------------------------------------------------------------------
def test_signed_sip_join_admits_the_call_without_echoing_the_room(harness: Harness) -> None:
    response = harness.hook(_joined())
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "call_id": "call-0001"}
    assert "5550100067" not in response.text
    assert harness.dispatcher.started == [("inbound", "call-_+15550100067_a1", "+1********67")]


def test_a_webhook_replayed_after_its_call_ended_starts_nothing(harness: Harness) -> None:
    body = _joined()
    signature = sign_webhook(body)
    assert harness.hook(body, auth=signature).json()["status"] == "accepted"
    harness.dispatcher.finish("call-_+15550100067_a1")  # the call ended; the room is free
    replay = harness.hook(body, auth=signature)
    assert replay.status_code == 200 and replay.json() == {"status": "duplicate_event"}
    assert len(harness.dispatcher.started) == 1
    assert harness.rejections.reasons == ["replayed"]


def test_a_new_event_for_a_live_room_never_starts_a_second_agent(harness: Harness) -> None:
    first = harness.hook(_joined()).json()
    again = harness.hook(_joined()).json()  # another event id, same room
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
def test_a_rejected_signature_is_401_dispatches_nothing_and_is_counted(
    harness: Harness, auth: str | None
) -> None:
    response = harness.hook(_joined(), auth=auth)
    assert response.status_code == 401
    assert harness.dispatcher.admissions == {}
    assert harness.rejections.reasons == ["signature"]


def test_tampered_body_is_401(harness: Harness) -> None:
    body = _joined()
    signature = sign_webhook(body)
    response = harness.hook(body.replace("call-_", "call-x"), auth=signature)
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid webhook signature"}
    assert harness.dispatcher.admissions == {}


@pytest.mark.parametrize(("created_at", "ttl_s", "reason"), [
    (time.time() - 3600, 300, "expired"),
    (time.time(), -120, "expired"),
    (time.time() + 3600, 300, "future"),
])
def test_stale_expired_and_future_dated_webhooks_are_401(
    harness: Harness, created_at: float, ttl_s: float, reason: str
) -> None:
    body = _joined(created_at=created_at)
    response = harness.hook(body, auth=sign_webhook(body, ttl_s=ttl_s))
    assert response.status_code == 401
    assert harness.dispatcher.admissions == {}
    assert harness.rejections.reasons == [reason]


def test_oversized_webhook_is_413_before_it_is_read_and_counted(harness: Harness) -> None:
    response = harness.client.post("/livekit/webhook", content=b"x" * (1024 * 1024 + 1),
                                   headers={"Authorization": "irrelevant"})
    assert response.status_code == 413
    assert harness.rejections.reasons == ["too_large"]


def test_malformed_json_is_400(harness: Harness) -> None:
    response = harness.hook('{"event": "participant_joined", ')
    assert response.status_code == 400
    assert "not a LiveKit event" in response.json()["detail"]
    assert harness.rejections.reasons == ["payload"]


def test_unknown_event_types_are_ignored(harness: Harness) -> None:
    body = f'{{"event": "track_published_v9", "createdAt": "{int(time.time())}"}}'
    response = harness.hook(body)
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "event": "track_published_v9"}
    left = harness.hook(webhook_json("participant_left", "call-a", "sip_caller"))
    assert left.json() == {"status": "ignored", "event": "participant_left"}
    assert harness.dispatcher.admissions == {}


class UnavailableDispatcher(InMemoryDispatcher):
    async def admit_inbound(self, room: str, caller_masked: str) -> Admission:
        raise DispatcherUnavailable("restarting", retry_after_s=3)

    async def start_outbound(self, room: str, to_masked: str) -> Admission:
        raise DispatcherUnavailable("restarting", retry_after_s=3)


def test_an_unavailable_dispatcher_is_503_with_retry_after() -> None:
    with FakeLiveKitServer().threaded() as server:
        h = Harness(server, telephony_settings(server.url, **ALLOW), limit=2,
                    dispatcher=UnavailableDispatcher(2))
        for response in (h.hook(_joined()), h.call({"to": "+15550100067", "trunk_id": TRUNK})):
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "3"
        assert server.calls("CreateSIPParticipant") == []


# --- calls API --------------------------------------------------------------------------------
def test_outbound_call_is_admitted_then_dialled(harness: Harness) -> None:
    response = harness.call({"to": "+15550100067", "trunk_id": TRUNK})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted" and body["call_id"] == "call-0001"
    assert body["to"] == "+1********67"
    assert "5550100067" not in response.text
    assert harness.dispatcher.started == [("outbound", body["room"], "+1********67")]
    assert harness.server is not None
    (dial,) = harness.server.calls("CreateSIPParticipant")
    assert (dial.sip_call_to, dial.sip_trunk_id, dial.room_name) == (
        "+15550100067", TRUNK, body["room"])
    assert [r.name for r in harness.server.calls("CreateRoom")] == [body["room"]]


@pytest.mark.parametrize(("prefixes", "detail"), [
    ("", "outbound calls are disabled: set OUTBOUND_ALLOWED_PREFIXES"),
    ("+44,+4930", "+1********67 is not under OUTBOUND_ALLOWED_PREFIXES (+44,+4930)"),
])
def test_destinations_outside_the_allowed_prefixes_are_403(prefixes: str, detail: str) -> None:
    with FakeLiveKitServer().threaded() as server:
        h = Harness(server, telephony_settings(server.url, outbound_allowed_prefixes=prefixes),
                    limit=2)
        response = h.call({"to": "+15550100067", "trunk_id": TRUNK})
        assert response.status_code == 403
        assert response.json()["detail"].startswith(detail)
        assert server.requests == [] and h.dispatcher.admissions == {}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": CALLS_TOKEN}])
def test_calls_api_needs_the_bearer_token(harness: Harness, headers: dict[str, str]) -> None:
    response = harness.call({"to": "+15550100067", "trunk_id": TRUNK}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert harness.server is not None
    assert harness.server.requests == [] and harness.dispatcher.admissions == {}


def test_calls_api_is_closed_when_no_token_is_configured() -> None:
    with FakeLiveKitServer().threaded() as server:
        closed = Harness(server, telephony_settings(server.url, calls_api_token=None, **ALLOW),
                         limit=2)
        assert closed.call({"to": "+15550100067", "trunk_id": TRUNK}).status_code == 401


class StepClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_over_the_rate_limit_is_429_with_retry_after_and_wrong_tokens_share_a_bucket() -> None:
    clock = StepClock()
    with FakeLiveKitServer().threaded() as server:
        h = Harness(server, telephony_settings(server.url, **ALLOW), limit=100,
                    rate_limiter=RateLimiter(1.0, 2, clock=clock))
        bad = {"to": "not a number", "trunk_id": TRUNK}
        assert [h.call(bad).status_code for _ in range(3)] == [422, 422, 429]
        refused = h.call(bad)
        assert refused.headers["Retry-After"] == "1"
        wrong = {"Authorization": "Bearer guess"}
        assert [h.call(bad, wrong).status_code for _ in range(3)] == [401, 401, 429]
        clock.t += 1.0
        assert h.call(bad).status_code == 422


@pytest.mark.parametrize("to", ["5550100067", "+1 555 010 0067", "+0123", "", 15550100067,
                                "+\uff11\uff15\uff15\uff15\uff10\uff11\uff10\uff10\uff10\uff16"])
def test_invalid_numbers_are_422_naming_the_field(harness: Harness, to: object) -> None:
    response = harness.call({"to": to, "trunk_id": TRUNK})
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["field"] == "to"
    assert body["detail"].startswith("to: ")
    assert "0100067" not in response.text
    assert harness.server is not None
    assert harness.server.requests == [] and harness.dispatcher.admissions == {}


def test_missing_fields_and_bad_json_are_refused(harness: Harness) -> None:
    missing = harness.call({"to": "+15550100067"})
    assert missing.status_code == 422
    assert missing.json()["detail"] == "trunk_id: Field required"
    bad = harness.client.post("/calls", content="{not json", headers=AUTH)
    assert bad.status_code == 400
    too_big = harness.client.post("/calls", content=b"{" * (16 * 1024 + 1), headers=AUTH)
    assert too_big.status_code == 413
    assert harness.server is not None and harness.server.requests == []


def test_over_capacity_outbound_is_503_and_dials_nobody() -> None:
    with FakeLiveKitServer().threaded() as server:
        full = Harness(server, telephony_settings(server.url, **ALLOW), limit=1)
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
    h = Harness(None, telephony_settings(livekit_url=None, **ALLOW), limit=2)
    response = h.call({"to": "+15550100067", "trunk_id": TRUNK})
    assert response.status_code == 503
    assert "LIVEKIT_URL" in response.json()["detail"]
    assert h.dispatcher.admissions == {}
