"""HTTP routes for telephony: LiveKit's webhook (inbound calls) and the calls API (outbound).

Thin: parse and authenticate, call into ``voice_ai.telephony`` and the dispatcher, render.
The public face (``deployments.public_face``) mounts the router from
``build_telephony_router``. Bodies arrive already capped (``deployments.ingress``).

    POST /livekit/webhook   401 bad/missing/expired/stale signature · 400 malformed
                            · 503 not configured, or dispatcher/replay guard unavailable
                            · 200 ignored / duplicate_event / admission (no room name: it
                              holds the caller's number)
    POST /calls             401 bad/missing bearer · 429 over the rate limit · 400 not JSON
                            · 422 invalid body · 403 destination not allowed
                            · 503 busy/unconfigured/dispatcher unavailable
                            · 502 LiveKit refused the dial · 202 accepted

Every refused webhook is logged (reason and status, never the token or the body) and counted
on ``voice_ai_webhooks_rejected_total{reason}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from livekit import api
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from voice_ai.config import Settings
from voice_ai.errors import ConfigError
from voice_ai.records import EndReason
from voice_ai.telephony.dispatch import (
    AdmissionStatus,
    CallDispatcherPort,
    DispatcherUnavailable,
)
from voice_ai.telephony.outbound import (
    DestinationNotAllowed,
    DialError,
    check_destination,
    dial_out,
    new_room_name,
)
from voice_ai.telephony.phone import mask_phone, parse_e164
from voice_ai.telephony.rate_limit import RateLimiter
from voice_ai.telephony.replay import LocalReplayGuard, ReplayGuardPort
from voice_ai.telephony.webhooks import (
    RejectReason,
    SipCallArrived,
    WebhookError,
    WebhookRejections,
    verify_and_parse,
)

__all__ = ["OutboundCallRequest", "TelephonyPorts", "build_telephony_router"]

LiveKitApiFactory = Callable[[], api.LiveKitAPI]
log = logging.getLogger("voice_ai.telephony.http")
# One bucket shared by every request whose bearer token is wrong: guessing is rate-limited
# as a whole, and a flood of bad tokens cannot use up the real token's bucket.
_WRONG_TOKEN_KEY = "wrong-token"


class _NoCounter:
    def webhook_rejected(self, reason: str) -> None:
        pass


@dataclass
class TelephonyPorts:
    """What the routes need besides settings; tests pass in-memory ones."""

    dispatcher: CallDispatcherPort
    livekit_api_factory: LiveKitApiFactory
    replay_guard: ReplayGuardPort = field(default_factory=LocalReplayGuard)
    rejections: WebhookRejections = field(default_factory=_NoCounter)
    clock: Callable[[], float] = time.time
    rate_limiter: RateLimiter | None = None


class OutboundCallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str
    trunk_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("to")
    @classmethod
    def _e164(cls, value: str) -> str:
        return parse_e164(value)


def _error(
    status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _invalid_body(error: ValidationError) -> JSONResponse:
    # the input is never echoed: it may be a full phone number
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]) or "body",
         "message": e["msg"].removeprefix("Value error, ")}
        for e in error.errors(include_input=False, include_url=False)
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _error(422, detail, errors=errors)


def _presented_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _token_ok(token: str | None, settings: Settings) -> bool:
    expected = settings.calls_api_token.get_secret_value() if settings.calls_api_token else ""
    if not expected or token is None:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def build_telephony_router(
    settings: Settings,
    dispatcher: CallDispatcherPort | None = None,
    livekit_api_factory: LiveKitApiFactory | None = None,
    *,
    ports: TelephonyPorts | None = None,
) -> APIRouter:
    """The telephony routes, bound to a dispatcher and a factory of LiveKit API clients
    (or to a whole ``TelephonyPorts``)."""
    if ports is None:
        if dispatcher is None or livekit_api_factory is None:
            raise TypeError("pass dispatcher and livekit_api_factory, or ports")
        ports = TelephonyPorts(dispatcher, livekit_api_factory)
    p = ports
    limiter = p.rate_limiter or RateLimiter(settings.calls_rate_limit_per_s,
                                            settings.calls_rate_limit_burst)
    router = APIRouter(tags=["telephony"])

    def refuse(reason: RejectReason, status: int, detail: str, **extra: Any) -> JSONResponse:
        log.warning("webhook rejected",
                    extra={"reason": reason.value, "status": status, "detail": detail})
        p.rejections.webhook_rejected(reason.value)
        headers = _retry_after(5) if status == 503 else None
        if status == 200:
            return JSONResponse({"status": "duplicate_event", **extra})
        return _error(status, detail, headers=headers)

    @router.post("/livekit/webhook")
    async def livekit_webhook(request: Request) -> JSONResponse:
        try:
            body = (await request.body()).decode("utf-8")
        except UnicodeDecodeError:
            return refuse(RejectReason.PAYLOAD, 400, "body is not UTF-8")
        try:
            event = verify_and_parse(body, request.headers.get("authorization"), settings,
                                     now=p.clock())
        except WebhookError as e:
            return refuse(e.reason, 400 if e.reason is RejectReason.PAYLOAD else 401, str(e))
        except ConfigError:
            return refuse(RejectReason.UNCONFIGURED, 503,
                          "LiveKit webhooks are not configured (LIVEKIT_API_KEY/SECRET)")
        if not isinstance(event, SipCallArrived):
            kind = getattr(event, "event_type", "participant_left")
            return JSONResponse({"status": "ignored", "event": kind})
        try:
            first = await p.replay_guard.first_sighting(event.event_id, event.valid_until)
        except (TimeoutError, DispatcherUnavailable, ConnectionError) as e:
            log.error("webhook replay guard unavailable", extra={"error": type(e).__name__})
            return _error(503, "webhook replay guard unavailable; retry",
                          headers=_retry_after(5))
        if not first:
            return refuse(RejectReason.REPLAYED, 200, "event already received")
        try:
            admission = await p.dispatcher.admit_inbound(event.room, event.caller_masked)
        except (DispatcherUnavailable, TimeoutError) as e:
            return _unavailable(e)
        answer = {"status": admission.status.value, "call_id": admission.call_id}
        if admission.reason:
            answer["reason"] = admission.reason
        return JSONResponse(answer)

    @router.post("/calls")
    async def start_call(request: Request) -> JSONResponse:
        token = _presented_token(request)
        authorized = _token_ok(token, settings)
        key = hashlib.sha256(token.encode()).hexdigest() if authorized and token else (
            _WRONG_TOKEN_KEY)
        verdict = limiter.check(key)
        if not verdict.allowed:
            return _error(429, "too many requests", headers={
                "Retry-After": verdict.retry_after_header})
        if not authorized:
            return _error(401, "missing or wrong bearer token",
                          headers={"WWW-Authenticate": "Bearer"})
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return _error(400, "body must be JSON: {\"to\": \"+...\", \"trunk_id\": \"...\"}")
        try:
            call = OutboundCallRequest.model_validate(payload)
            check_destination(call.to, settings.outbound_prefixes)
        except ValidationError as e:
            return _invalid_body(e)
        except DestinationNotAllowed as e:
            return _error(403, str(e))
        try:
            lk = p.livekit_api_factory()
        except ConfigError as e:
            return _error(503, str(e))
        try:
            return await _dial(settings, p.dispatcher, lk, call)
        except (DispatcherUnavailable, TimeoutError) as e:
            return _unavailable(e)
        finally:
            await lk.aclose()

    return router


def _unavailable(error: Exception) -> JSONResponse:
    retry = getattr(error, "retry_after_s", 5.0)
    log.error("call dispatcher unavailable", extra={"error": type(error).__name__})
    return _error(503, "the call dispatcher is not answering; retry", headers=_retry_after(retry))


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
    except asyncio.CancelledError:  # the request's deadline: free the slot, then give up
        await asyncio.shield(dispatcher.cancel(room, EndReason.ERROR))
        raise
    return JSONResponse(
        {"status": "accepted", "call_id": admission.call_id, "room": placed.room,
         "to": to_masked, "sip_call_id": placed.sip_call_id},
        status_code=202,
    )
