"""The browser call page on the public face: talk to the agent with nothing but a browser.

    GET  /                    303 -> /talk
    GET  /talk                the page (plain HTML + JS, deployments/static/talk/)
    GET  /talk/static/NAME    talk.js, talk.css
    POST /talk/offer          {"type": "offer", "sdp": "v=0..."}
                              200 {"status": "accepted", "call_id", "answer": {"type", "sdp"}}
                              400 bad offer (one line saying what; nothing is started)
                              503 all lines busy ({"status": "rejected", "message": BUSY_MESSAGE},
                                  recorded rejected_busy like any call over the limit), or no
                                  call actor could answer, or the dispatcher is not answering

Thin: the offer is checked by ``voice_ai.webrtc.signalling`` before anything else, then handed
to a ``TalkCallPort`` (the dispatcher admits it like any other call and a call actor answers).
"""

from __future__ import annotations

import logging
import math
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from ray.exceptions import RayActorError

from voice_ai.calls.deadline import within
from voice_ai.config import Settings
from voice_ai.pipeline.specs import CallSpec
from voice_ai.telephony.dispatch import DispatcherUnavailable
from voice_ai.webrtc.signalling import (
    OfferDecision,
    OfferError,
    OfferResult,
    SdpOffer,
    TalkCallPort,
)

__all__ = ["RayTalkCalls", "build_talk_router", "talk_url"]

log = logging.getLogger("voice_ai.webrtc.http")
STATIC = Path(__file__).parent / "static" / "talk"
_ASSETS = {"talk.js": "text/javascript", "talk.css": "text/css"}


def talk_url(settings: Settings) -> str:
    """Where a person on this machine opens the call page."""
    host = settings.http_host if settings.http_host not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{settings.http_port}/talk"


def build_talk_router(settings: Settings, calls: TalkCallPort) -> APIRouter:
    router = APIRouter(tags=["talk"])
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    @router.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/talk", status_code=303)

    @router.get("/talk", include_in_schema=False)
    async def talk_page() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @router.get("/talk/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in _ASSETS:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return FileResponse(STATIC / name, media_type=_ASSETS[name])

    @router.post("/talk/offer")
    async def offer(request: Request) -> JSONResponse:
        try:
            sdp_offer = SdpOffer.parse(await request.body())
        except OfferError as e:
            return JSONResponse({"detail": str(e)}, status_code=400)
        try:
            result = await calls.offer_call(sdp_offer)
        except (DispatcherUnavailable, TimeoutError) as e:
            retry = getattr(e, "retry_after_s", 5.0)
            return JSONResponse({"status": "unavailable", "detail": str(e) or "try again"},
                                status_code=503,
                                headers={"Retry-After": str(math.ceil(retry))})
        return _render(result, settings)

    return router


def _render(result: OfferResult, settings: Settings) -> JSONResponse:
    if result.decision is OfferDecision.ACCEPTED:
        assert result.answer is not None
        return JSONResponse({"status": "accepted", "call_id": result.call_id,
                             "answer": result.answer.to_dict()})
    body: dict[str, Any] = {"status": result.decision.value, "call_id": result.call_id}
    if result.decision is OfferDecision.REJECTED:
        body["message"] = settings.busy_message
        body["reason"] = result.reason or "over MAX_CONCURRENT_CALLS"
        return JSONResponse(body, status_code=503, headers={"Retry-After": "30"})
    body["detail"] = result.reason or "the call could not be answered"
    log.warning("browser call not answered", extra={"call_id": result.call_id})
    return JSONResponse(body, status_code=503)


class RayTalkCalls:
    """``TalkCallPort`` on the cluster's dispatcher actor (its ``offer_call(spec)``).

    Not retried through a dispatcher restart, unlike webhooks: the offer may already have been
    admitted and answered, and a second answer would leave the first call to time out. The page
    gets 503 and asks the person to call again."""

    def __init__(self, dispatcher: Any, *, deadline_s: float = 10.0) -> None:
        self._dispatcher = dispatcher
        self._deadline_s = deadline_s

    async def offer_call(self, offer: SdpOffer) -> OfferResult:
        spec = CallSpec(call_id=uuid.uuid4().hex[:16], webrtc_offer=offer, caller_masked="browser")
        try:
            result: OfferResult = await within(self._dispatcher.offer_call.remote(spec),
                                               self._deadline_s, "the call dispatcher")
        except (RayActorError, TimeoutError) as e:
            raise DispatcherUnavailable(
                f"the call dispatcher did not answer the offer ({type(e).__name__}); "
                "call again") from None
        return result
