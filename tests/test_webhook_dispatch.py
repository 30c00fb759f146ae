"""LiveKit webhooks through the real Serve app and dispatcher.

The system under test is the shared one (``local_system``) with ``LIVEKIT_URL=sim://…``: a
webhook-dispatched room is answered by the same warm CallActor, CallSession and pools as any
call; only the transport differs (the simulated caller instead of a LiveKit room, since no
LiveKit server can run here).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest
import ray

from tests.fakes.livekit_server import sign_webhook, webhook_json
from voice_ai.records import CallDirection, CallOutcome, CallRecord

pytestmark = [pytest.mark.ray, pytest.mark.integration, pytest.mark.slow]


def _post(url: str, body: str, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_signed_sip_webhook_runs_a_call_once_and_bad_signatures_start_nothing(
        local_system) -> None:
    base = f"http://127.0.0.1:{local_system.settings.http_port}"
    dispatcher = local_system.handles.dispatcher
    room = "call-_+15550100067_AbCd"
    body = webhook_json("participant_joined", room, "sip_caller_1", phone="+15550100067")
    accepted_before = ray.get(dispatcher.status.remote())["accepted_total"]

    # tampered body and wrong key: 401, nothing dispatched
    tampered = body.replace("sip_caller_1", "sip_caller_2")
    assert _post(f"{base}/livekit/webhook", tampered, {"Authorization": sign_webhook(body)})[0] \
        == 401
    wrong_key = sign_webhook(body, api_secret="not-the-secret-0123456789abcdef")
    assert _post(f"{base}/livekit/webhook", body, {"Authorization": wrong_key})[0] == 401
    assert _post(f"{base}/livekit/webhook", body, {})[0] == 401
    assert ray.get(dispatcher.status.remote())["accepted_total"] == accepted_before

    status, first = _post(f"{base}/livekit/webhook", body, {"Authorization": sign_webhook(body)})
    assert status == 200 and first["status"] == "accepted", first
    # LiveKit tells us again about the same room (a new event): one agent per room
    second = webhook_json("participant_joined", room, "sip_caller_1", phone="+15550100067")
    status, again = _post(f"{base}/livekit/webhook", second,
                          {"Authorization": sign_webhook(second)})
    assert status == 200 and again == {**first, "status": "duplicate"}
    # the same event delivered twice is recognised as such and starts nothing either
    status, replay = _post(f"{base}/livekit/webhook", body, {"Authorization": sign_webhook(body)})
    assert status == 200 and replay["status"] == "duplicate_event", replay
    assert ray.get(dispatcher.status.remote())["accepted_total"] == accepted_before + 1

    record = ray.get(dispatcher.wait_call.remote(first["call_id"]), timeout=240)
    assert ray.get(dispatcher.status.remote())["accepted_total"] == accepted_before + 1
    assert isinstance(record, CallRecord)
    assert record.outcome is CallOutcome.COMPLETED, record.error
    assert record.direction is CallDirection.INBOUND
    assert record.caller_masked == "+1********67"  # never the full number
    heard = set(re.findall(r"[a-z]+", record.turns[0].user_text.lower()))
    assert {"opening", "hours", "friday"} <= heard, record.turns[0].user_text


def test_ignored_and_malformed_webhooks(local_system) -> None:
    base = f"http://127.0.0.1:{local_system.settings.http_port}"
    left = webhook_json("participant_left", "call-x", "sip_caller_1")
    status, reply = _post(f"{base}/livekit/webhook", left, {"Authorization": sign_webhook(left)})
    assert status == 200 and reply["status"] == "ignored"
    bad = "{not json"
    assert _post(f"{base}/livekit/webhook", bad, {"Authorization": sign_webhook(bad)})[0] == 400
