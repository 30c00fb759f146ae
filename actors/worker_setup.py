"""Runs once on every Ray worker's main thread (``worker_process_setup_hook``).

- livekit-agents refuses to register plugins off the main thread ("Plugins must be registered
  on the main thread"), and async actors run ``__init__`` and methods on an asyncio thread, so
  the plugins a worker may need are imported here, before any actor code runs.
- Log records of every worker, on any node, are forwarded to the telemetry hub, which writes
  the runbook's log files (``voice_ai.observability.logs``).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

PLUGINS = (
    "livekit.plugins.silero",
    "livekit.plugins.deepgram",
    "livekit.plugins.openai",
    "livekit.plugins.cartesia",
)


def import_plugins() -> None:
    for name in PLUGINS:
        try:
            importlib.import_module(name)
        except ImportError:  # a plugin that is not installed is simply not available
            logging.getLogger(__name__).warning("plugin not importable: %s", name)


class HubSink:
    """Sends a batch of log records to the telemetry hub; looks the hub up lazily."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        self._hub: Any = None

    def __call__(self, batch: list[dict[str, object]]) -> None:
        import ray

        from actors.names import TELEMETRY

        if self._hub is None:
            try:
                self._hub = ray.get_actor(TELEMETRY, namespace=self._namespace)
            except ValueError:
                return  # no hub yet (system still starting): these records stay in Ray's logs
        self._hub.ingest_logs.remote(batch)


def forward_logs(namespace: str = "voice_ai") -> None:
    """Forward this process's log records to the hub of the system in ``namespace``. The setup
    hook installs the default; actors re-install it with their system's namespace."""
    import ray

    from voice_ai.observability.logs import install_log_forwarding

    node = ray.get_runtime_context().get_node_id()[:12] if ray.is_initialized() else ""
    install_log_forwarding(HubSink(namespace), "INFO", node=node)


def setup_worker() -> None:
    import_plugins()
    forward_logs()


RUNTIME_ENV = {
    "worker_process_setup_hook": "actors.worker_setup.setup_worker",
    "env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                 "TOKENIZERS_PARALLELISM": "false"},
}
