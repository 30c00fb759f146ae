"""Build the transport a call spec asks for."""

from __future__ import annotations

from voice_ai.config import Settings
from voice_ai.pipeline.recorder import ConversationRecorder
from voice_ai.pipeline.simulated import SimulatedCaller
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transport import CallTransport
from voice_ai.providers.engines import SpeechSynthesizer

__all__ = ["build_transport"]


def build_transport(
    spec: CallSpec, settings: Settings, *, caller_voice: SpeechSynthesizer
) -> CallTransport:
    """A simulated caller speaks with ``caller_voice`` (Piper, whatever the agent's TTS is, so
    that STT hears real speech); a room spec joins LiveKit."""
    if spec.scenario is not None:
        recorder = ConversationRecorder() if spec.record_audio else None
        return SimulatedCaller(spec.scenario, caller_voice, recorder=recorder)
    from voice_ai.records import CallDirection
    from voice_ai.telephony.livekit_transport import LiveKitTransport

    assert spec.room is not None
    direction = CallDirection.OUTBOUND if spec.outbound else CallDirection.INBOUND
    return LiveKitTransport(settings, spec.room, direction=direction,
                            caller_masked=spec.caller_masked)
