"""Build the transport a call spec asks for."""

from __future__ import annotations

from voice_ai.config import Settings
from voice_ai.pipeline.recorder import ConversationRecorder
from voice_ai.pipeline.session import CallEngines
from voice_ai.pipeline.simulated import SimulatedCaller
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transport import CallTransport

__all__ = ["build_transport"]


def build_transport(spec: CallSpec, engines: CallEngines, settings: Settings) -> CallTransport:
    if spec.scenario is not None:
        recorder = ConversationRecorder() if spec.record_audio else None
        return SimulatedCaller(spec.scenario, engines.tts, recorder=recorder)
    from voice_ai.telephony.livekit_transport import LiveKitTransport

    return LiveKitTransport.from_spec(spec, settings)
