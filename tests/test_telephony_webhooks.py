from __future__ import annotations

from datetime import timedelta

import pytest
from livekit import api

from tests.fakes.livekit_server import sign_webhook, webhook_json
from tests.telephony_helpers import API_KEY, API_SECRET, telephony_settings
from voice_ai.errors import ConfigError
from voice_ai.telephony.webhooks import (
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


def _joined() -> str:
    return webhook_json("participant_joined", ROOM, "sip_caller_1", phone="+15550100067")


def test_signed_sip_join_becomes_a_call_arrival_with_the_caller_masked() -> None:
    body = _joined()
    event = verify_and_parse(body, sign_webhook(body), SETTINGS)
    assert event == SipCallArrived(ROOM, "sip_caller_1", "+1********67", "EV_test")


def test_bearer_prefix_is_accepted_too() -> None:
    body = _joined()
    assert isinstance(verify_and_parse(body, f"Bearer {sign_webhook(body)}", SETTINGS),
                      SipCallArrived)


def test_tampered_body_is_refused() -> None:
    body = _joined()
    token = sign_webhook(body)
    tampered = body.replace("sip_caller_1", "sip_caller_2")
    with pytest.raises(WebhookAuthError, match="invalid webhook signature"):
        verify_and_parse(tampered, token, SETTINGS)


@pytest.mark.parametrize(
    ("key", "secret"),
    [(API_KEY, "wrong-secret-for-tests-0123456789"), ("otherkey", API_SECRET)],
)
def test_wrong_key_or_secret_is_refused(key: str, secret: str) -> None:
    body = _joined()
    with pytest.raises(WebhookAuthError):
        verify_and_parse(body, sign_webhook(body, key, secret), SETTINGS)


@pytest.mark.parametrize("header", [None, "", "Bearer ", "not-a-jwt"])
def test_missing_or_garbage_authorization_is_refused(header: str | None) -> None:
    with pytest.raises(WebhookAuthError):
        verify_and_parse(_joined(), header, SETTINGS)


def test_expired_signature_is_refused() -> None:
    import base64
    import hashlib

    body = _joined()
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = (api.AccessToken(API_KEY, API_SECRET).with_sha256(digest)
             .with_ttl(timedelta(minutes=-5)).to_jwt())
    with pytest.raises(WebhookAuthError):
        verify_and_parse(body, token, SETTINGS)


def test_signed_malformed_json_is_a_payload_error() -> None:
    body = '{"event": "participant_joined", "room": '
    with pytest.raises(WebhookPayloadError, match="not a LiveKit event"):
        verify_and_parse(body, sign_webhook(body), SETTINGS)


def test_signed_json_of_the_wrong_shape_is_a_payload_error() -> None:
    body = '{"event": 12, "room": ["x"]}'
    with pytest.raises(WebhookPayloadError):
        verify_and_parse(body, sign_webhook(body), SETTINGS)


def test_unknown_event_types_are_ignored_by_name() -> None:
    body = webhook_json("egress_started", ROOM)
    assert verify_and_parse(body, sign_webhook(body), SETTINGS) == Ignored("egress_started")
    body = '{"event": "something_new", "futureField": 1}'
    assert verify_and_parse(body, sign_webhook(body), SETTINGS) == Ignored("something_new")


def test_a_non_sip_participant_joining_is_ignored() -> None:
    body = webhook_json("participant_joined", ROOM, "browser-user", sip_caller=False)
    assert verify_and_parse(body, sign_webhook(body), SETTINGS) == Ignored("participant_joined")


def test_participant_left_is_reported() -> None:
    body = webhook_json("participant_left", ROOM, "sip_caller_1")
    event = verify_and_parse(body, sign_webhook(body), SETTINGS)
    assert event == ParticipantLeft(ROOM, "sip_caller_1", is_sip=True)


@pytest.mark.parametrize("body", ['{"room": {"name": "call-1"}}',
                                  '{"event": "participant_joined", "room": {"name": "call-1"}}'])
def test_events_missing_what_we_need_are_payload_errors(body: str) -> None:
    with pytest.raises(WebhookPayloadError):
        verify_and_parse(body, sign_webhook(body), SETTINGS)


def test_without_livekit_credentials_nothing_is_trusted() -> None:
    body = _joined()
    with pytest.raises(ConfigError, match="LIVEKIT_API_SECRET"):
        verify_and_parse(body, sign_webhook(body), telephony_settings(livekit_api_secret=None))
