"""ASGI middleware of the public face: body caps before reading, and one deadline per request.

- **Body caps** per route (``BODY_LIMITS``; 64 KiB for any other route): a ``Content-Length``
  over the cap is answered 413 before one byte of the body is read; a body without one
  (chunked) is counted while it streams and cut off at the cap, also 413. A malformed
  ``Content-Length`` is 400.
- **Deadline**: a request that has not finished after ``timeout_s`` is answered 504 (or, if
  its response already started, cut off). Handlers must not block the event loop, or no
  deadline can fire: Ray calls inside handlers are awaited, never ``ray.get``.

WebSocket and lifespan scopes pass through untouched.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["BODY_LIMITS", "DEFAULT_BODY_LIMIT", "IngressLimits"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KIB = 1024
BODY_LIMITS: Mapping[str, int] = {
    "/livekit/webhook": 1024 * KIB,  # LiveKit events are a few KB; room metadata can grow
    "/calls": 16 * KIB,  # {"to": ..., "trunk_id": ...}
    "/talk/offer": 64 * KIB,  # an SDP offer
}
DEFAULT_BODY_LIMIT = 64 * KIB


class _BodyTooLarge(Exception):
    pass


class IngressLimits:
    """Wraps an ASGI app (a FastAPI app) with the caps and the deadline."""

    def __init__(self, app: ASGIApp, *, timeout_s: float,
                 limits: Mapping[str, int] = BODY_LIMITS,
                 default_limit: int = DEFAULT_BODY_LIMIT,
                 on_refused: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self._timeout_s = timeout_s
        self._limits = dict(limits)
        self._default = default_limit
        self._on_refused = on_refused  # (route, status): count what never reached a handler

    @staticmethod
    def route(scope: Scope) -> str:
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # a Serve route prefix, e.g. /cloud
            path = path[len(root):] or "/"
        return path.rstrip("/") or "/"

    def limit_for(self, scope: Scope) -> int:
        return self._limits.get(self.route(scope), self._default)

    async def _refuse(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        if self._on_refused is not None:
            self._on_refused(self.route(scope), status)
        await _answer(send, status, detail)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared == -1:
            await self._refuse(scope, send, 400, "Content-Length is not a number")
            return
        if declared is not None and declared > limit:
            await self._refuse(scope, send, 413, f"body over {limit} bytes")
            return
        started = False
        received = 0

        async def capped_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                nonlocal received
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, capped_receive, tracking_send),
                                   self._timeout_s)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, send, 413, f"body over {limit} bytes")
        except TimeoutError:
            if not started:
                await self._refuse(scope, send, 504,
                                   f"request took longer than {self._timeout_s:g}s")


def _content_length(scope: Scope) -> int | None:
    """The declared length, None when absent, -1 when malformed."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            if not text.isascii() or not text.isdigit() or len(text) > 18:
                return -1
            return int(text)
    return None


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
