"""Webhook verification: signature, freshness (createdAt and the token's expiry), parsing."""

from __future__ import annotations

import time

import pytest

from tests.fakes.livekit_server import sign_webhook, webhook_json
from tests.telephony_helpers import API_KEY, API_SECRET, telephony_settings
from voice_ai.errors import ConfigError
from voice_ai.telephony.rejections import RejectReason
from voice_ai.telephony.webhooks import (
    FUTURE_SKEW_S,
    Ignored,
    ParticipantLeft,
    SipCallArrived,
    WebhookAuthError,
    WebhookPayloadError,
    verify_and_parse,
)

pytestmark = pytest.mark.unit

SETTINGS = telephony_settings()
ROOM = "call-_+15550100067_x7Yz"
# Every body is dated NOW and verified at NOW: the module is collected minutes before its
# tests run in a full suite, so a body dated by the real clock would lie in NOW's future.
NOW = time.time()


def _joined(event_id: str = "EV_test", created_at: float = NOW) -> str:
    return webhook_json("participant_joined", ROOM, "sip_caller_1", phone="+15550100067",
                        event_id=event_id, created_at=created_at)


def _verify(body: str, header: str | None, now: float = NOW, settings=SETTINGS):  # type: ignore[no-untyped-def]
    return verify_and_parse(body, header, settings, now=now)


def test_signed_sip_join_becomes_a_call_arrival_with_the_caller_masked() -> None:
    body = _joined()
    event = _verify(body, sign_webhook(body))
    assert isinstance(event, SipCallArrived)
    assert (event.room, event.participant_identity, event.caller_masked, event.event_id) == (
        ROOM, "sip_caller_1", "+1********67", "EV_test")


def test_a_replay_is_refused_by_itself_once_valid_until_has_passed() -> None:
    body = _joined(created_at=NOW)
    event = _verify(body, sign_webhook(body, ttl_s=300))
    assert isinstance(event, SipCallArrived)
    # LiveKit signs for 5 minutes; the tolerance is 5 minutes: the earlier bound wins
    assert NOW + 299 <= event.valid_until <= NOW + 300 + FUTURE_SKEW_S + 1
    with pytest.raises(WebhookAuthError) as refused:
        _verify(body, sign_webhook(body), now=event.valid_until + 1)
    assert refused.value.reason is RejectReason.EXPIRED


def test_bearer_prefix_is_accepted_too() -> None:
    body = _joined()
    assert isinstance(_verify(body, f"Bearer {sign_webhook(body)}"), SipCallArrived)


def test_tampered_body_is_refused() -> None:
    body = _joined()
    token = sign_webhook(body)
    tampered = body.replace("sip_caller_1", "sip_caller_2")
    with pytest.raises(WebhookAuthError, match="invalid webhook signature") as refused:
        _verify(tampered, token)
    assert refused.value.reason is RejectReason.SIGNATURE


@pytest.mark.parametrize(
    ("key", "secret"),
    [(API_KEY, "wrong-secret-for-tests-0123456789"), ("otherkey", API_SECRET)],
)
def test_wrong_key_or_secret_is_refused(key: str, secret: str) -> None:
    body = _joined()
    with pytest.raises(WebhookAuthError) as refused:
        _verify(body, sign_webhook(body, key, secret))
    assert refused.value.reason is RejectReason.SIGNATURE


@pytest.mark.parametrize("header", [None, "", "Bearer ", "not-a-jwt", "x" * 5000])
def test_missing_or_garbage_authorization_is_refused(header: str | None) -> None:
    with pytest.raises(WebhookAuthError):
        _verify(_joined(), header)


def test_expired_token_is_refused_as_expired() -> None:
    body = _joined()
    with pytest.raises(WebhookAuthError, match="expired") as refused:
        _verify(body, sign_webhook(body, ttl_s=-300))
    assert refused.value.reason is RejectReason.EXPIRED


def test_created_at_older_than_the_tolerance_is_refused() -> None:
    old = _joined(created_at=NOW - SETTINGS.webhook_tolerance_s - 5)
    with pytest.raises(WebhookAuthError, match="WEBHOOK_TOLERANCE_S") as refused:
        _verify(old, sign_webhook(old))
    assert refused.value.reason is RejectReason.EXPIRED
    tight = telephony_settings(webhook_tolerance_s=30)
    recent = _joined(created_at=NOW - 60)
    with pytest.raises(WebhookAuthError):
        _verify(recent, sign_webhook(recent), settings=tight)
    assert isinstance(_verify(recent, sign_webhook(recent)), SipCallArrived)


def test_future_dated_created_at_is_refused() -> None:
    ahead = _joined(created_at=NOW + FUTURE_SKEW_S + 30)
    with pytest.raises(WebhookAuthError, match="future") as refused:
        _verify(ahead, sign_webhook(ahead))
    assert refused.value.reason is RejectReason.FUTURE
    slightly = _joined(created_at=NOW + 5)  # clock skew within the allowance
    assert isinstance(_verify(slightly, sign_webhook(slightly)), SipCallArrived)


def test_missing_created_at_or_event_id_is_a_payload_error() -> None:
    body = '{"event": "participant_joined"}'
    with pytest.raises(WebhookPayloadError, match="createdAt"):
        _verify(body, sign_webhook(body))
    no_id = _joined(event_id="")
    with pytest.raises(WebhookPayloadError, match="event id"):
        _verify(no_id, sign_webhook(no_id))


def test_signed_malformed_json_is_a_payload_error() -> None:
    body = '{"event": "participant_joined", "room": '
    with pytest.raises(WebhookPayloadError, match="not a LiveKit event"):
        _verify(body, sign_webhook(body))


def test_signed_deeply_nested_json_is_a_payload_error() -> None:
    body = '{"event": "x", "room": ' + "[" * 50_000 + "]" * 50_000 + "}"
    with pytest.raises(WebhookPayloadError):
        _verify(body, sign_webhook(body))


def test_signed_json_of_the_wrong_shape_is_a_payload_error() -> None:
    body = '{"event": 12, "room": ["x"]}'
    with pytest.raises(WebhookPayloadError):
        _verify(body, sign_webhook(body))


def test_unknown_event_types_are_ignored_by_name() -> None:
    body = webhook_json("egress_started", ROOM, created_at=NOW)
    assert _verify(body, sign_webhook(body)) == Ignored("egress_started")
    body = f'{{"event": "something_new", "futureField": 1, "createdAt": "{int(NOW)}"}}'
    assert _verify(body, sign_webhook(body)) == Ignored("something_new")


def test_a_non_sip_participant_joining_is_ignored() -> None:
    body = webhook_json("participant_joined", ROOM, "browser-user", sip_caller=False,
                        created_at=NOW)
    assert _verify(body, sign_webhook(body)) == Ignored("participant_joined")


def test_participant_left_is_reported() -> None:
    body = webhook_json("participant_left", ROOM, "sip_caller_1", created_at=NOW)
    assert _verify(body, sign_webhook(body)) == ParticipantLeft(ROOM, "sip_caller_1", is_sip=True)


@pytest.mark.parametrize("event", ["", "participant_joined"])
def test_events_missing_what_we_need_are_payload_errors(event: str) -> None:
    body = (f'{{"event": "{event}", "room": {{"name": "call-1"}}, '
            f'"createdAt": "{int(NOW)}"}}')
    with pytest.raises(WebhookPayloadError):
        _verify(body, sign_webhook(body))


def test_without_livekit_credentials_nothing_is_trusted() -> None:
    body = _joined()
    with pytest.raises(ConfigError, match="LIVEKIT_API_SECRET"):
        _verify(body, sign_webhook(body), settings=telephony_settings(livekit_api_secret=None))


@pytest.mark.parametrize("room", ["call-_+15550100067\r\nX-Injected: 1", "../../etc/passwd",
                                  "call/../../x", "call-\u2024\u2024-x", "c" * 200, "-call"])
def test_room_names_a_sip_room_never_has_are_refused_without_echo(room: str) -> None:
    body = webhook_json("participant_joined", room, "sip_caller_1", phone="+15550100067",
                        created_at=NOW)
    with pytest.raises(WebhookPayloadError) as refused:
        _verify(body, sign_webhook(body))
    assert "5550100067" not in str(refused.value) and "passwd" not in str(refused.value)


def test_an_identity_with_control_characters_is_refused() -> None:
    body = webhook_json("participant_joined", ROOM, "sip_caller\nINJECTED", phone="+15550100067",
                        created_at=NOW)
    with pytest.raises(WebhookPayloadError):
        _verify(body, sign_webhook(body))
