"""The Serve app on :8000: health, cluster-wide metrics, and (mounted) telephony routes.

Thin: each route asks an actor handle and renders. ``build_app`` is the builder that
``serve_config.yaml`` names; it reads settings from the environment of the cluster.
"""


import gzip
from typing import Any

import ray
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from ray import serve
from ray.serve import Application

from actors.names import BREAKER_REGISTRY, DISPATCHER, TELEMETRY
from actors.pool_layout import pool_layout
from actors.system import ensure_system, ping_all
from deployments.ray_dispatch import RayCallDispatcher
from deployments.telephony_routes import build_telephony_router
from voice_ai.config import Settings, load_settings
from voice_ai.telephony.credentials import open_livekit_api

api = FastAPI(title="Voice AI agent", version="0.1.0")


def _maybe_gzip(request: Request, body: bytes, media_type: str, enabled: bool) -> Response:
    """ENABLE_COMPRESSION: gzip when the client accepts it."""
    if enabled and "gzip" in request.headers.get("accept-encoding", ""):
        return Response(gzip.compress(body), media_type=media_type,
                        headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return Response(body, media_type=media_type)


@serve.deployment(ray_actor_options={"num_cpus": 0}, num_replicas=1)
@serve.ingress(api)
class VoiceGateway:
    def __init__(self, settings: Settings, start_system: bool = True) -> None:
        self._settings = settings
        if start_system:  # `serve deploy` on a fresh cluster: bring up the actors too
            ensure_system(settings)
        self._ns = settings.ray_namespace
        self._dispatcher = ray.get_actor(DISPATCHER, namespace=self._ns)
        self._telemetry = ray.get_actor(TELEMETRY, namespace=self._ns)
        # POST /livekit/webhook and POST /calls, bound to this cluster's dispatcher
        api.include_router(build_telephony_router(
            settings, RayCallDispatcher(self._dispatcher), lambda: open_livekit_api(settings)))

    async def _components(self) -> dict[str, dict[str, Any]]:
        components: dict[str, dict[str, Any]] = {}
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        components["ray"] = {
            "status": "healthy" if nodes else "unhealthy",
            "nodes_alive": len(nodes),
            "nodes": [{"node_id": n["NodeID"][:12], "address": n["NodeManagerAddress"],
                       "resources": n.get("Resources", {})} for n in nodes],
        }
        for stage, pools in pool_layout(self._settings).items():
            primary = await self._pool_health(pools[0].names)
            primary["provider"] = pools[0].provider
            if len(pools) > 1:  # a cloud provider with the local model behind it
                fallback = await self._pool_health(pools[1].names)
                fallback["provider"] = pools[1].provider
                primary["fallback"] = fallback
                if primary["status"] == "unhealthy" and fallback["status"] != "unhealthy":
                    primary["status"] = "degraded"
            components[f"{stage}_pool"] = primary
        try:
            status = await self._dispatcher.status.remote()
            components["call_pool"] = {"status": "healthy", **status}
        except Exception as e:
            components["call_pool"] = {"status": "unhealthy", "error": f"{type(e).__name__}: {e}"}
        components["breakers"] = await self._breakers()
        return components

    async def _pool_health(self, names: list[str]) -> dict[str, Any]:
        handles = []
        for name in names:
            try:
                handles.append(ray.get_actor(name, namespace=self._ns))
            except ValueError:
                handles.append(None)
        infos = await ping_all([h for h in handles if h is not None])
        workers = [i if isinstance(i, dict) else {"error": f"{type(i).__name__}: {i}"}
                   for i in infos]
        workers += [{"error": "actor not found"}] * handles.count(None)
        live = sum(1 for w in workers if "error" not in w)
        return {
            "status": "healthy" if live == len(names) else "degraded" if live else "unhealthy",
            "workers_live": live,
            "workers_configured": len(names),
            "queue_length": sum(w.get("in_flight", 0) for w in workers),
            "workers": workers,
        }

    async def _breakers(self) -> dict[str, Any]:
        """Breaker per cloud provider: open is degraded (fallbacks serve), a permanent error
        (401, 403, 400) needs a person."""
        try:
            registry = ray.get_actor(BREAKER_REGISTRY, namespace=self._ns)
        except ValueError:
            return {"status": "healthy", "detail": "no cloud provider configured"}
        try:
            snapshots = await registry.snapshots.remote()
        except Exception as e:
            return {"status": "unhealthy", "error": f"{type(e).__name__}: {e}"}
        attention = sorted(p for p, s in snapshots.items() if s["needs_attention"])
        degraded = attention or any(s["state"] != "closed" for s in snapshots.values())
        return {"status": "degraded" if degraded else "healthy", "needs_attention": attention,
                "providers": snapshots}

    @api.get("/health")
    async def health(self) -> JSONResponse:
        components = await self._components()
        failing = sorted(n for n, c in components.items() if c["status"] == "unhealthy")
        if failing:
            return JSONResponse({"status": "unhealthy", "failing": failing}, status_code=503)
        return JSONResponse({"status": "healthy"})

    @api.get("/health/detailed")
    async def health_detailed(self, request: Request) -> Response:
        import json

        components = await self._components()
        statuses = {c["status"] for c in components.values()}
        overall = ("unhealthy" if "unhealthy" in statuses
                   else "degraded" if "degraded" in statuses else "healthy")
        body = json.dumps({"status": overall, "components": components}).encode()
        response = _maybe_gzip(request, body, "application/json",
                               self._settings.enable_compression)
        response.status_code = 503 if overall == "unhealthy" else 200
        return response

    @api.get("/metrics")
    async def metrics(self, request: Request) -> Response:
        body: bytes = await self._telemetry.metrics_text.remote()
        return _maybe_gzip(request, body, CONTENT_TYPE_LATEST, self._settings.enable_compression)


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Serve builder (``import_path: deployments.app:build_app``). ``args`` may override settings
    by field name, e.g. ``{"max_concurrent_calls": 50}``; the rest comes from the environment."""
    settings = load_settings(**(args or {}))
    return VoiceGateway.bind(settings)  # type: ignore[attr-defined, no-any-return]
