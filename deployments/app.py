"""The Serve app on :8000, the public face: LiveKit webhook, calls API, plain ``/health``.

Thin wiring: the routes are ``deployments.public_face.build_public_api``; this deployment
binds them to the cluster (dispatcher, replay guard, metrics hub, health reads) and makes sure
the internal face (``/health/detailed``, ``/metrics``, ``/docs`` on ``INTERNAL_HTTP_PORT``)
runs. ``build_app`` is the builder that ``serve_config.yaml`` names; it reads settings from the
environment of the cluster.

Several replicas (``GATEWAY_REPLICAS``) with room for many requests each: every dispatcher
read has a deadline, so a slow dispatcher costs a 503, never a queue the webhook waits in.
"""

from __future__ import annotations

from typing import Any

import ray
from fastapi import FastAPI
from ray import serve
from ray.actor import ActorHandle
from ray.serve import Application

from actors.names import DISPATCHER, TELEMETRY
from actors.system import ensure_system
from actors.webhook_guard import RayReplayGuard, ensure_webhook_guard
from deployments.health import ClusterHealth
from deployments.internal_face import ensure_internal_face
from deployments.public_face import build_public_api
from deployments.ray_dispatch import RayCallDispatcher
from deployments.talk_routes import RayTalkCalls, build_talk_router
from deployments.telephony_routes import TelephonyPorts
from voice_ai.config import Settings, load_settings
from voice_ai.telephony.credentials import open_livekit_api

__all__ = ["VoiceGateway", "bind_gateway", "build_app"]

# Requests one replica holds at once. Handlers only await (deadlines everywhere), so a high
# number is safe; Serve's default of 5 let five slow admissions block every other webhook.
MAX_ONGOING_REQUESTS = 200
# Serve's health checks stay at its defaults. After a SIGKILL of one replica, webhooks that the
# proxy still routes to it hang for ~30 s (the fault suite's "Serve replica SIGKILL" row); a
# 2 s health_check_period_s was tried and measured no better (34.5 s), so it is not set.


class HubWebhookRejections:
    """``WebhookRejections`` on the cluster's metrics hub: fire and forget."""

    def __init__(self, hub: ActorHandle[Any]) -> None:
        self._hub = hub

    def webhook_rejected(self, reason: str) -> None:
        self._hub.webhook_rejected.remote(reason)


@serve.deployment(ray_actor_options={"num_cpus": 0}, num_replicas=2,
                  max_ongoing_requests=MAX_ONGOING_REQUESTS)
@serve.ingress()
class VoiceGateway:
    def __init__(self, settings: Settings, start_system: bool = True) -> None:
        if start_system:  # `serve deploy` on a fresh cluster: bring up the actors too
            ensure_system(settings)
        ns = settings.ray_namespace
        ensure_internal_face(settings)
        ports = TelephonyPorts(
            dispatcher=RayCallDispatcher(ray.get_actor(DISPATCHER, namespace=ns)),
            livekit_api_factory=lambda: open_livekit_api(settings),
            replay_guard=RayReplayGuard(ensure_webhook_guard(settings)),
            rejections=HubWebhookRejections(ray.get_actor(TELEMETRY, namespace=ns)),
        )
        self._app = build_public_api(settings, ports, ClusterHealth(settings))
        # the browser call page: /talk (and / -> /talk), POST /talk/offer (docs/webrtc.md)
        self._app.include_router(build_talk_router(
            settings, RayTalkCalls(ray.get_actor(DISPATCHER, namespace=ns))))

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self._app


def bind_gateway(settings: Settings, *, start_system: bool = False) -> Application:
    """The public face bound to ``settings``, with ``GATEWAY_REPLICAS`` replicas."""
    deployment = VoiceGateway.options(num_replicas=settings.gateway_replicas)  # type: ignore[attr-defined]
    return deployment.bind(settings, start_system)  # type: ignore[no-any-return]


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Serve builder (``import_path: deployments.app:build_app``). ``args`` may override settings
    by field name, e.g. ``{"max_concurrent_calls": 50}``; the rest comes from the environment."""
    settings = load_settings(**(args or {}))
    return bind_gateway(settings, start_system=True)
