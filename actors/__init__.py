"""Ray actor shells. Each method delegates to a plain object from ``voice_ai`` in a few lines."""
