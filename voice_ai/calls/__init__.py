"""Calls as the cluster sees them: admission, the warm pool of call actors, supervision of each
call, recovery after a dispatcher restart, and the life of a call inside its actor.

Pure asyncio behind the ports of ``voice_ai.calls.ports``; ``actors/dispatcher.py`` and
``actors/call_actor.py`` are the Ray shells. See docs/resilience.md.
"""
