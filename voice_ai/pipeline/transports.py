"""Build the transport a call spec asks for, watched by the zombie-call watchdog."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from livekit.agents import tts

from voice_ai.config import Settings
from voice_ai.pipeline.line import CallerOrder, LineAddress, LineTransport
from voice_ai.pipeline.recorder import ConversationRecorder
from voice_ai.pipeline.scenario import load_scenario
from voice_ai.pipeline.simulated import CallerVoice, SimulatedCaller
from voice_ai.pipeline.specs import CallSpec
from voice_ai.pipeline.transport import CallTransport
from voice_ai.pipeline.watchdog import CallWatchdog, WatchdogLimits
from voice_ai.records import CallDirection

if TYPE_CHECKING:
    from voice_ai.webrtc.signalling import SdpAnswer
    from voice_ai.webrtc.transport import WebRtcTransport

__all__ = ["SIMULATED_ROOM_SCHEME", "answer_offer", "build_transport", "caller_order",
           "is_simulated_room"]

# LIVEKIT_URL=sim://scenarios/x.yaml: rooms are answered by the simulated caller speaking that
# scenario. The whole inbound path (signed webhook, dispatcher, warm call actor, session) runs
# as in production with no LiveKit server; only the transport differs.
SIMULATED_ROOM_SCHEME = "sim://"


def is_simulated_room(settings: Settings) -> bool:
    return (settings.livekit_url or "").startswith(SIMULATED_ROOM_SCHEME)


def build_transport(
    spec: CallSpec, settings: Settings, *, caller_voice: CallerVoice | tts.TTS[Any] | None = None,
    line: LineAddress | None = None, standby: bool = False,
) -> CallTransport:
    """A simulated caller on a ``line`` (its caller host dialled it: ``caller_order``) is
    reached over that line; without one it runs here and speaks with ``caller_voice`` (Piper,
    whatever the agent's TTS is, so that STT hears real speech); a room spec joins LiveKit; an
    offer spec is a browser call (answer it with ``answer_offer`` instead). ``standby``: the
    line's leg waits for the call's current leg to leave (``LineTransport``). Every transport
    gets a watchdog (CALL_SILENCE_TIMEOUT_S, MAX_CALL_DURATION_S)."""
    transport = (LineTransport(line, standby=standby) if line is not None
                 else _transport_for(spec, settings, caller_voice))
    transport.watchdog = CallWatchdog(WatchdogLimits.from_settings(settings))
    return transport


def caller_order(spec: CallSpec, settings: Settings) -> CallerOrder | None:
    """What a caller host needs to place this call's simulated caller (a scenario spec, or a
    room of a ``sim://`` LiveKit URL); ``None`` for a real caller (LiveKit, browser)."""
    if spec.webrtc_offer is not None:
        return None
    if spec.scenario is not None:
        return CallerOrder(spec.call_id, spec.scenario, record_audio=spec.record_audio)
    if not is_simulated_room(settings):
        return None
    assert settings.livekit_url is not None
    scenario = load_scenario(settings.livekit_url.removeprefix(SIMULATED_ROOM_SCHEME))
    direction = CallDirection.OUTBOUND if spec.outbound else CallDirection.INBOUND
    return CallerOrder(spec.call_id, scenario, record_audio=spec.record_audio,
                       direction=direction, caller_masked=spec.caller_masked)


async def answer_offer(
    spec: CallSpec, settings: Settings
) -> tuple[WebRtcTransport, SdpAnswer]:
    """A browser call's transport, its SDP answer ready for the page. Keep the transport for
    ``run_call``: the browser connects to it (ICE within WEBRTC_ICE_TIMEOUT_S)."""
    from voice_ai.webrtc.transport import WebRtcTransport

    if spec.webrtc_offer is None:
        raise ValueError("answer_offer needs a CallSpec with webrtc_offer")
    transport = build_transport(spec, settings)
    assert isinstance(transport, WebRtcTransport)
    return transport, await transport.accept()


def _transport_for(
    spec: CallSpec, settings: Settings, caller_voice: CallerVoice | tts.TTS[Any] | None
) -> CallTransport:
    if spec.webrtc_offer is not None:
        from voice_ai.webrtc.transport import WebRtcTransport

        return WebRtcTransport(spec.webrtc_offer, ice_timeout_s=settings.webrtc_ice_timeout_s)
    if spec.scenario is not None or is_simulated_room(settings):
        if caller_voice is None:
            raise ValueError("a simulated caller needs caller_voice")
    if spec.scenario is not None:
        recorder = ConversationRecorder() if spec.record_audio else None
        assert caller_voice is not None
        return SimulatedCaller(spec.scenario, caller_voice, recorder=recorder)
    assert spec.room is not None
    direction = CallDirection.OUTBOUND if spec.outbound else CallDirection.INBOUND
    if is_simulated_room(settings):
        assert settings.livekit_url is not None
        scenario = load_scenario(settings.livekit_url.removeprefix(SIMULATED_ROOM_SCHEME))
        recorder = ConversationRecorder() if spec.record_audio else None
        assert caller_voice is not None
        return SimulatedCaller(scenario, caller_voice, recorder=recorder, direction=direction,
                               caller_masked=spec.caller_masked)
    from voice_ai.telephony.livekit_transport import LiveKitTransport

    return LiveKitTransport(settings, spec.room, direction=direction,
                            caller_masked=spec.caller_masked)
