"""HTTP routes for telephony: LiveKit's webhook (inbound calls) and the calls API (outbound).

Thin: parse and authenticate, call into ``voice_ai.telephony`` and the dispatcher, render.
The Serve app mounts the router from ``build_telephony_router``.

    POST /livekit/webhook   401 bad/missing signature · 400 malformed · 200 ignored/admission
    POST /calls             401 bad/missing bearer · 422 invalid body · 503 busy/unconfigured
                            · 502 LiveKit refused the dial · 202 accepted
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from livekit import api
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from voice_ai.config import Settings
from voice_ai.errors import ConfigError
from voice_ai.records import EndReason
from voice_ai.telephony.dispatch import AdmissionStatus, CallDispatcherPort
from voice_ai.telephony.outbound import DialError, dial_out, new_room_name
from voice_ai.telephony.phone import mask_phone, parse_e164
from voice_ai.telephony.webhooks import (
    SipCallArrived,
    WebhookAuthError,
    WebhookPayloadError,
    verify_and_parse,
)

__all__ = ["OutboundCallRequest", "build_telephony_router"]

LiveKitApiFactory = Callable[[], api.LiveKitAPI]


class OutboundCallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str
    trunk_id: str = Field(min_length=1, max_length=128)

    @field_validator("to")
    @classmethod
    def _e164(cls, value: str) -> str:
        return parse_e164(value)


def _error(
    status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _invalid_body(error: ValidationError) -> JSONResponse:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]) or "body",
         "message": e["msg"].removeprefix("Value error, ")}
        for e in error.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _error(422, detail, errors=errors)


def _bearer_ok(request: Request, settings: Settings) -> bool:
    expected = settings.calls_api_token.get_secret_value() if settings.calls_api_token else ""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def build_telephony_router(
    settings: Settings,
    dispatcher: CallDispatcherPort,
    livekit_api_factory: LiveKitApiFactory,
) -> APIRouter:
    """The telephony routes, bound to ``dispatcher`` and a factory of LiveKit API clients."""
    router = APIRouter(tags=["telephony"])

    @router.post("/livekit/webhook")
    async def livekit_webhook(request: Request) -> JSONResponse:
        try:
            body = (await request.body()).decode("utf-8")
            event = verify_and_parse(body, request.headers.get("authorization"), settings)
        except WebhookAuthError as e:
            return _error(401, str(e))
        except (WebhookPayloadError, UnicodeDecodeError) as e:
            return _error(400, str(e) if isinstance(e, WebhookPayloadError) else "body not UTF-8")
        except ConfigError:
            return _error(503, "LiveKit webhooks are not configured (LIVEKIT_API_KEY/SECRET)")
        if not isinstance(event, SipCallArrived):
            kind = getattr(event, "event_type", "participant_left")
            return JSONResponse({"status": "ignored", "event": kind})
        admission = await dispatcher.admit_inbound(event.room, event.caller_masked)
        return JSONResponse(admission.to_dict())

    @router.post("/calls")
    async def start_call(request: Request) -> JSONResponse:
        if not _bearer_ok(request, settings):
            return _error(401, "missing or wrong bearer token",
                          headers={"WWW-Authenticate": "Bearer"})
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "body must be JSON: {\"to\": \"+...\", \"trunk_id\": \"...\"}")
        try:
            call = OutboundCallRequest.model_validate(payload)
        except ValidationError as e:
            return _invalid_body(e)
        try:
            lk = livekit_api_factory()
        except ConfigError as e:
            return _error(503, str(e))
        try:
            return await _dial(settings, dispatcher, lk, call)
        finally:
            await lk.aclose()

    return router


async def _dial(
    settings: Settings, dispatcher: CallDispatcherPort, lk: api.LiveKitAPI,
    call: OutboundCallRequest,
) -> JSONResponse:
    to_masked = mask_phone(call.to)
    room = new_room_name()
    admission = await dispatcher.start_outbound(room, to_masked)
    if admission.status is AdmissionStatus.REJECTED:
        return JSONResponse({**admission.to_dict(), "to": to_masked}, status_code=503,
                            headers={"Retry-After": "30"})
    try:
        placed = await dial_out(lk, settings, call.to, call.trunk_id, room=room)
    except DialError as e:
        await dispatcher.cancel(room, EndReason.ERROR)
        return _error(502, str(e), call_id=admission.call_id)
    return JSONResponse(
        {"status": "accepted", "call_id": admission.call_id, "room": placed.room,
         "to": to_masked, "sip_call_id": placed.sip_call_id},
        status_code=202,
    )
