"""Cloud engines (Deepgram, OpenAI, Cartesia) built on the livekit plugins.

Import on the main thread (or in a Ray worker whose setup hook imported the plugins):
livekit-agents registers plugins only there.
"""

from voice_ai.providers.cloud.cartesia import CartesiaEngine
from voice_ai.providers.cloud.deepgram import DeepgramEngine
from voice_ai.providers.cloud.openai import OpenAIEngine

__all__ = ["CartesiaEngine", "DeepgramEngine", "OpenAIEngine"]
