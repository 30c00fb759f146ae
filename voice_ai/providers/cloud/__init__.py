"""The cloud providers: livekit's Deepgram, OpenAI and Cartesia plugins, configured from
``Settings`` (``build``). Import on the main thread (or in a Ray worker whose setup hook
imported the plugins): livekit-agents registers plugins only there."""
