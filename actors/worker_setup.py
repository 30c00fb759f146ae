"""Runs once on every Ray worker's main thread (``worker_process_setup_hook``).

livekit-agents refuses to register plugins off the main thread ("Plugins must be registered on
the main thread"), and async actors run ``__init__`` and methods on an asyncio thread. So the
plugins a worker may need are imported here, before any actor code runs.
"""

from __future__ import annotations

import importlib
import logging

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


RUNTIME_ENV = {
    "worker_process_setup_hook": "actors.worker_setup.import_plugins",
    "env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
}
