"""The runtime environment of the system actors that load no model and no plugin: the
dispatcher and the store writer.

Every other worker runs ``actors.worker_setup.setup_worker``, which imports the livekit plugins
(seconds of imports on a busy 2-core machine) before any actor code. A restarted dispatcher
should be admitting calls again by then, so these actors get a setup hook that only forwards
their logs. Ray applies ``worker_process_setup_hook`` from a driver's job only, so the hook is
set through the environment variable its workers read at start (as serve_config.yaml does).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CALL_ACTOR_RUNTIME_ENV", "SYSTEM_RUNTIME_ENV", "setup_system_worker"]

_HOOK_ENV_VAR = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"  # ray_constants.WORKER_PROCESS_...


def setup_system_worker() -> None:
    from actors.worker_setup import forward_logs

    forward_logs()


_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
SYSTEM_RUNTIME_ENV: dict[str, Any] = {
    "env_vars": {_HOOK_ENV_VAR: "actors.system_env.setup_system_worker", **_ENV},
}
# What call actors need (the plugins imported on the main thread). Given explicitly: an actor
# created by the dispatcher would otherwise inherit the dispatcher's light environment.
# MALLOC_ARENA_MAX=2: a call actor serves call after call for hours; glibc's default of up to
# 8 arenas per core (one per thread that allocates: Ray's, the VAD's, livekit's) fragments
# what each call frees, and RSS crept up call after call (the soak, docs/resilience.md; with
# CallHost's malloc_trim after each call, voice_ai/calls/memory.py).
CALL_ACTOR_RUNTIME_ENV: dict[str, Any] = {
    "env_vars": {_HOOK_ENV_VAR: "actors.worker_setup.setup_worker", "MALLOC_ARENA_MAX": "2",
                 **_ENV},
}
