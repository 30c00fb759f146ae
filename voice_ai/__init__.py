"""Voice AI agent domain: config, providers, call pipeline, store, observability.

This package is pure asyncio and never imports ``ray``; the Ray shells live in ``actors/``
and ``deployments/`` and delegate to the objects defined here.
"""

__version__ = "0.1.0"
