"""LiveKit telephony: SIP calls in and out, webhooks, provisioning, the room transport.

Modules are imported directly (``from voice_ai.telephony.phone import mask_phone``); this package
imports nothing itself so that the light helpers do not pull in livekit-agents.
"""
