"""``WebhookGuard``: the cluster's one replay guard for LiveKit webhooks (a Ray shell).

Every Serve replica asks this one named actor, so a replayed webhook is caught whichever
replica it reaches. The policy is ``voice_ai.telephony.replay.ReplayGuard``. If the actor
restarts it forgets the ids it held; the signature's expiry and the createdAt tolerance still
bound a replay to ``WEBHOOK_TOLERANCE_S``, and the dispatcher refuses a second agent for a
room whose call is live (docs/security.md).
"""

from __future__ import annotations

from typing import Any

import ray
from ray.actor import ActorHandle

from actors.store_writer import HEAD_NODE_RESOURCE
from voice_ai.calls.deadline import within
from voice_ai.config import Settings
from voice_ai.telephony.replay import ReplayGuard

__all__ = ["WEBHOOK_GUARD", "RayReplayGuard", "WebhookGuard", "ensure_webhook_guard"]

WEBHOOK_GUARD = "webhook_guard"
ASK_TIMEOUT_S = 5.0


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class WebhookGuard:
    def __init__(self) -> None:
        self._guard = ReplayGuard()

    def first_sighting(self, event_id: str, valid_until: float) -> bool:
        return self._guard.first_sighting(event_id, valid_until)

    def remembered(self) -> int:
        return len(self._guard)


def ensure_webhook_guard(settings: Settings, *, ready_timeout_s: float = 60.0) -> ActorHandle[Any]:
    """The system's guard (created on the head node if missing), once it answers: a fresh
    worker process can take seconds to start, longer than a webhook may wait. Blocking."""
    guard: ActorHandle[Any] = WebhookGuard.options(  # type: ignore[attr-defined]
        name=WEBHOOK_GUARD, namespace=settings.ray_namespace, lifetime="detached",
        get_if_exists=True, resources={HEAD_NODE_RESOURCE: 0.001},
    ).remote()
    ray.get(guard.remembered.remote(), timeout=ready_timeout_s)
    return guard


class RayReplayGuard:
    """``ReplayGuardPort`` over the actor; raises ``TimeoutError`` when it does not answer."""

    def __init__(self, guard: ActorHandle[Any], timeout_s: float = ASK_TIMEOUT_S) -> None:
        self._guard = guard
        self._timeout_s = timeout_s

    async def first_sighting(self, event_id: str, valid_until: float) -> bool:
        ref: Any = self._guard.first_sighting.remote(event_id, valid_until)
        try:
            return bool(await within(ref, self._timeout_s, "the webhook replay guard"))
        except ray.exceptions.RayActorError as e:
            raise TimeoutError(f"webhook guard unavailable: {type(e).__name__}") from None
