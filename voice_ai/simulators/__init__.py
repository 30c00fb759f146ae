"""Loopback simulators of Deepgram, OpenAI and Cartesia for tests and benchmarks.

The real livekit plugins work against them unchanged: point ``DEEPGRAM_BASE_URL``,
``OPENAI_BASE_URL`` and ``CARTESIA_BASE_URL`` at ``ProviderSimulators.base_urls()``. Their
model of time is in ``profile`` and in docs/performance.md.
"""

from voice_ai.simulators.cartesia import CartesiaSimulator, tone_pcm16
from voice_ai.simulators.deepgram import DeepgramSimulator
from voice_ai.simulators.faults import Fault
from voice_ai.simulators.openai import ChatRequest, OpenAISimulator, ScriptedReply, ToolCall
from voice_ai.simulators.profile import LatencyProfile, SimulatorProfile, named_profile
from voice_ai.simulators.suite import ProviderSimulators

__all__ = [
    "CartesiaSimulator",
    "ChatRequest",
    "DeepgramSimulator",
    "Fault",
    "LatencyProfile",
    "OpenAISimulator",
    "ProviderSimulators",
    "ScriptedReply",
    "SimulatorProfile",
    "ToolCall",
    "named_profile",
    "tone_pcm16",
]
