"""The public face (Serve, :8000): the LiveKit webhook, the calls API and a plain ``/health``.

Nothing else is routed here: no API docs, no OpenAPI schema, no detailed health, no metrics
(those are on the internal face, ``deployments.internal_face``); anything else is 404. Every
request passes ``IngressLimits`` (body caps before reading, a deadline).

``build_public_api`` is used by the Serve deployment (``deployments.app``) and, with
in-memory ports, by the tests, so both exercise the same routes and middleware.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from deployments.ingress import IngressLimits
from deployments.telephony_routes import TelephonyPorts, build_telephony_router
from voice_ai.config import Settings
from voice_ai.records import EndReason
from voice_ai.telephony.dispatch import Admission
from voice_ai.telephony.rejections import RejectReason

__all__ = ["HealthProbe", "build_public_api", "public_openapi"]

log = logging.getLogger("voice_ai.telephony.http")
TITLE = "Voice AI agent"
VERSION = "0.1.0"


class HealthProbe(Protocol):
    async def overall(self) -> str:
        """``healthy``, ``degraded`` or ``unhealthy``."""
        ...


def build_public_api(settings: Settings, telephony: TelephonyPorts,
                     health: HealthProbe) -> FastAPI:
    app = FastAPI(title=TITLE, version=VERSION, docs_url=None, redoc_url=None,
                  openapi_url=None)
    def refused(route: str, status: int) -> None:
        if route == "/livekit/webhook" and status != 504:  # refused before the route: count
            reason = RejectReason.TOO_LARGE if status == 413 else RejectReason.PAYLOAD
            log.warning("webhook rejected", extra={"reason": reason.value, "status": status})
            telephony.rejections.webhook_rejected(reason.value)

    app.add_middleware(IngressLimits, timeout_s=settings.http_request_timeout_s,
                       on_refused=refused)

    @app.get("/health")
    async def plain_health() -> JSONResponse:
        """One word: healthy / degraded (200) or unhealthy (503). Details: internal face."""
        status = await health.overall()
        return JSONResponse({"status": status}, status_code=503 if status == "unhealthy"
                            else 200)

    app.include_router(build_telephony_router(settings, ports=telephony))
    return app


class _Unwired:
    """Ports of an app built only to describe its routes; never called."""

    async def admit_inbound(self, room: str, caller_masked: str) -> Admission:
        raise RuntimeError("schema-only app")

    async def start_outbound(self, room: str, to_masked: str) -> Admission:
        raise RuntimeError("schema-only app")

    async def cancel(self, room: str, reason: EndReason) -> None:
        raise RuntimeError("schema-only app")

    async def overall(self) -> str:
        raise RuntimeError("schema-only app")


def public_openapi(settings: Settings) -> dict[str, Any]:
    """The OpenAPI schema of the public face, for the internal face's ``/docs``."""
    unwired = _Unwired()

    def no_livekit() -> Any:
        raise RuntimeError("schema-only app")

    app = build_public_api(settings, TelephonyPorts(unwired, no_livekit), unwired)
    app.openapi_url = "/openapi.json"  # openapi() builds the schema only when a URL is set
    return app.openapi()
