"""The internal face: ``/health/detailed``, ``/metrics``, ``/docs`` and ``/openapi.json``.

Serve has one HTTP port and it faces the internet, so these live on a second port served by
one small named actor pinned to the head node: ``InternalFace`` binds
``INTERNAL_HTTP_HOST:INTERNAL_HTTP_PORT`` (default ``127.0.0.1:8001``). Prometheus runs on the
head and scrapes it there; an operator reaches it through an SSH tunnel
(docs/RUNBOOK.md). The socket is bound in the constructor, so a port in use fails the
actor's creation with a clear message; the server then runs in its own thread, so a restart
of the actor (``max_restarts=-1``) serves again with no one calling it.

``ensure_internal_face`` starts it (or finds it); the Serve replica calls it, so
``serve deploy`` and ``LocalSystem`` both get the internal face. ``internal_url`` tells tests
and tools where it listens.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from typing import Any, Protocol

import ray
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from ray.exceptions import RayActorError

from actors.names import TELEMETRY
from actors.store_writer import HEAD_NODE_RESOURCE
from deployments.health import ClusterHealth, overall_status
from deployments.public_face import TITLE, public_openapi
from voice_ai.calls.deadline import within
from voice_ai.config import Settings

__all__ = ["INTERNAL_FACE", "ComponentHealth", "InternalFace", "build_internal_api",
           "ensure_internal_face", "internal_url"]

INTERNAL_FACE = "internal_http"
METRICS_TIMEOUT_S = 5.0


def _maybe_gzip(request: Request, body: bytes, media_type: str, enabled: bool) -> Response:
    """ENABLE_COMPRESSION: gzip when the client accepts it."""
    if enabled and "gzip" in request.headers.get("accept-encoding", ""):
        return Response(gzip.compress(body), media_type=media_type,
                        headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return Response(body, media_type=media_type)


async def _metrics_text(namespace: str) -> bytes:
    hub = await within(asyncio.to_thread(ray.get_actor, TELEMETRY, namespace=namespace),
                       METRICS_TIMEOUT_S, "lookup of the telemetry hub")
    body: bytes = await within(hub.metrics_text.remote(), METRICS_TIMEOUT_S,
                               "the telemetry hub")
    return body


class ComponentHealth(Protocol):
    async def components(self) -> dict[str, dict[str, Any]]: ...


def build_internal_api(settings: Settings, health: ComponentHealth) -> FastAPI:
    app = FastAPI(title=f"{TITLE} (internal face)", docs_url=None, redoc_url=None,
                  openapi_url=None)
    schema: dict[str, Any] = {}
    compress = settings.enable_compression

    @app.get("/health/detailed")
    async def health_detailed(request: Request) -> Response:
        components = await health.components()
        overall = overall_status(components)
        body = json.dumps({"status": overall, "components": components}).encode()
        response = _maybe_gzip(request, body, "application/json", compress)
        response.status_code = 503 if overall == "unhealthy" else 200
        return response

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        try:
            body = await _metrics_text(settings.ray_namespace)
        except Exception as e:  # the hub restarting: Prometheus records a failed scrape
            return Response(f"metrics hub unavailable: {type(e).__name__}\n", status_code=503,
                            media_type="text/plain")
        return _maybe_gzip(request, body, CONTENT_TYPE_LATEST, compress)

    @app.get("/openapi.json")
    async def openapi() -> JSONResponse:
        """The public face's API (the internal face's own routes: docs/security.md)."""
        if not schema:
            schema.update(public_openapi(settings))
        return JSONResponse(schema)

    @app.get("/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{TITLE} API")

    return app


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RuntimeError(f"the internal face cannot listen on {host}:{port} ({e.strerror}); "
                           "set INTERNAL_HTTP_HOST / INTERNAL_HTTP_PORT") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class InternalFace:
    """Serves ``build_internal_api`` on its own port, in a thread of this actor's process."""

    def __init__(self, settings: Settings) -> None:
        self._sock = _bind(settings.internal_http_host, settings.internal_http_port)
        host, port = self._sock.getsockname()[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self._url = f"http://{shown}:{port}"
        app = build_internal_api(settings, ClusterHealth(settings))
        # log_config=None: keep this process's logging as the worker set it up (forwarded to
        # the hub's files); uvicorn's default config would add its own handlers
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                         name="internal-face", daemon=True).start()

    def url(self) -> str:
        return self._url


def ensure_internal_face(settings: Settings) -> str:
    """Start the internal face of this system (or find it) and return its URL. Blocking."""
    face = InternalFace.options(  # type: ignore[attr-defined]
        name=INTERNAL_FACE, namespace=settings.ray_namespace, lifetime="detached",
        get_if_exists=True, resources={HEAD_NODE_RESOURCE: 0.001},
    ).remote(settings)
    try:
        url = str(ray.get(face.url.remote(), timeout=60))
    except RayActorError as e:
        lines = str(e).splitlines()
        detail = next((line for line in lines if "internal face cannot listen" in line),
                      "the internal face actor died while starting")
        raise RuntimeError(detail.strip()) from None
    return url


def internal_url(settings: Settings) -> str:
    """Where this system's internal face listens (asks the actor when the port was 0)."""
    if settings.internal_http_port:
        host = settings.internal_http_host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:" \
               f"{settings.internal_http_port}"
    face = ray.get_actor(INTERNAL_FACE, namespace=settings.ray_namespace)
    return str(ray.get(face.url.remote(), timeout=30))
