"""Ray's fake multi-node provider, able to give a launched node a ``memory`` resource.

Call actors ask Ray for ``memory`` (CALL_ACTOR_MEMORY_MB), so the autoscaler launches a node
type for them only if the type declares ``memory``. Ray's ``FakeMultiNodeProvider`` passes
every resource but CPU, GPU and object store memory to ``RayParams(resources=...)``, which
refuses ``memory`` there; this provider moves it to ``RayParams(memory=...)``. Loaded by the
autoscaler's monitor process of ``tests/autoscaling_cluster.py`` only."""

from __future__ import annotations

from typing import Any

import ray._private.parameter as parameter
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider

__all__ = ["MemoryFakeProvider"]

_RAY_PARAMS = parameter.RayParams


def _ray_params(*args: Any, resources: dict[str, float] | None = None, **kwargs: Any) -> Any:
    resources = dict(resources or {})
    if "memory" in resources:
        kwargs["memory"] = int(resources.pop("memory"))
    return _RAY_PARAMS(*args, resources=resources, **kwargs)


class MemoryFakeProvider(FakeMultiNodeProvider):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        parameter.RayParams = _ray_params  # this (monitor) process builds only fake nodes
        super().__init__(*args, **kwargs)
