"""``LiveKitTransport``: one call's audio through a LiveKit room, via livekit-agents' ``RoomIO``.

The agent joins the room with its own short-lived token (that room only), finds the caller
(the SIP participant, or the identity it was told), and hands the room to ``RoomIO``, which
reads the caller's track into the ``AgentSession`` and publishes the agent's voice with the
playout contract turn-taking depends on. What stays here is what RoomIO does not know: who
the caller is on a phone call, why the call ended, and the SIP actions.

- the caller's participant leaves           -> ``CALLER_HANGUP``
- ``hangup()`` (RemoveParticipant)          -> ``AGENT_HANGUP``
- ``transfer()`` (TransferSIPParticipant)   -> ``TRANSFERRED``
- no caller within ``caller_timeout_s``     -> ``TIMEOUT``
- the room connection drops                 -> ``ERROR``
- no audio either way / too long            -> the watchdog's reasons (``CallTransport``)

Construct it inside the running event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
from array import array
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from livekit import api, rtc
from livekit.agents import AgentSession
from livekit.agents.voice.io import AudioInput, AudioOutput
from livekit.agents.voice.room_io import (
    AudioInputOptions,
    AudioOutputOptions,
    RoomIO,
    RoomOptions,
)
from livekit.protocol.room import RoomParticipantIdentity
from livekit.protocol.sip import SIPTransferStatus, TransferSIPParticipantRequest

from voice_ai.audio import Resampler
from voice_ai.config import Settings
from voice_ai.pipeline.transport import CallTransport, TransportActionError, dtmf_code
from voice_ai.records import CallDirection, EndReason
from voice_ai.telephony.credentials import livekit_credentials, open_livekit_api
from voice_ai.telephony.phone import mask_phone, redact_numbers
from voice_ai.telephony.tokens import mint_agent_token

__all__ = ["AGENT_TRACK_NAME", "LiveKitApiFactory", "LiveKitTransport", "busy_tone_frames",
           "play_busy_and_hangup", "remove_participant"]

log = logging.getLogger("voice_ai.telephony")

LiveKitApiFactory = Callable[[], api.LiveKitAPI]
AGENT_TRACK_NAME = "agent-voice"
FRAME_MS = 20
_SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
_TRANSFER_TIMEOUT_S = 60.0  # the transfer target rings; LiveKit answers once it picks up


async def remove_participant(factory: LiveKitApiFactory, room: str, identity: str) -> bool:
    """RemoveParticipant through the server API; ``False`` when they had already left."""
    lk = factory()
    try:
        await lk.room.remove_participant(RoomParticipantIdentity(room=room, identity=identity))
        return True
    except api.ServerError as e:
        if e.code == api.ServerErrorCode.NOT_FOUND:
            return False
        raise
    finally:
        await lk.aclose()


def room_options(caller_identity: str, sample_rate: int) -> RoomOptions:
    """What ``RoomIO`` does for a phone call: the caller's audio in at ``sample_rate`` in 20 ms
    frames (RoomIO's 50 ms default would add up to 30 ms to every end of turn), the agent's
    voice out on ``AGENT_TRACK_NAME``. No automatic gain control: the line's level as it
    arrives (as before RoomIO), which the zombie watchdog measures. No text in or out (a phone
    shows none, and transcripts in the room would be personal data), no pre-connect audio
    (phones do not send it), and RoomIO does not close the session: this transport decides how
    the call ended."""
    return RoomOptions(
        participant_identity=caller_identity,
        participant_kinds=[_SIP, rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD],
        audio_input=AudioInputOptions(sample_rate=sample_rate, frame_size_ms=FRAME_MS,
                                      pre_connect_audio=False, auto_gain_control=False),
        audio_output=AudioOutputOptions(sample_rate=sample_rate, track_name=AGENT_TRACK_NAME),
        text_input=False,
        text_output=False,
        close_on_disconnect=False,
        delete_room_on_close=False,
    )


class LiveKitTransport(CallTransport):
    """One call in LiveKit room ``room_name``; see the module docstring for the end reasons."""

    def __init__(
        self,
        settings: Settings,
        room_name: str,
        *,
        direction: CallDirection = CallDirection.INBOUND,
        caller_masked: str = "",
        caller_identity: str | None = None,
        api_factory: LiveKitApiFactory | None = None,
        caller_timeout_s: float = 45.0,
        sample_rate: int = 24_000,
        room: rtc.Room | None = None,
    ) -> None:
        self.direction = direction
        self.caller_masked = caller_masked
        self.room_name = room_name
        self.room = room or rtc.Room()
        self.sample_rate = sample_rate
        self._settings = settings
        self._api_factory = api_factory or partial(open_livekit_api, settings)
        self._expected_identity = caller_identity
        self._caller_timeout_s = caller_timeout_s
        self._room_io: RoomIO | None = None
        self._ended: asyncio.Future[EndReason] = asyncio.get_running_loop().create_future()
        self._caller: str | None = None
        self._caller_left = False
        self._transferring = False
        self._caller_joined = asyncio.Event()
        self.room.on("participant_connected", self._on_participant_connected)
        self.room.on("participant_disconnected", self._on_participant_disconnected)
        self.room.on("disconnected", self._on_room_disconnected)

    # --- CallTransport ---------------------------------------------------------------------
    @property
    def room_io(self) -> RoomIO:
        if self._room_io is None:
            raise RuntimeError("the room's audio is wired by attach(session)")
        return self._room_io

    @property
    def audio_input(self) -> AudioInput:
        audio_in = self.room_io.audio_input
        assert audio_in is not None  # RoomOptions enable audio input
        return audio_in

    @property
    def audio_output(self) -> AudioOutput:
        audio_out = self.room_io.audio_output
        assert audio_out is not None  # RoomOptions enable audio output
        return audio_out

    @property
    def caller_identity(self) -> str | None:
        return self._caller

    @property
    def ended(self) -> bool:
        return self._ended.done()

    async def connect(self) -> None:
        """Join, then wait for the caller (inbound: usually there already; outbound: until
        they answer). On timeout the call ends with ``TIMEOUT``."""
        creds = livekit_credentials(self._settings)
        token = mint_agent_token(self._settings, self.room_name)
        try:
            await self.room.connect(creds.url, token, rtc.RoomOptions(auto_subscribe=True))
        except Exception:
            self._end(EndReason.ERROR)
            raise
        for participant in list(self.room.remote_participants.values()):
            self._on_participant_connected(participant)
        await self._wait_for_caller()

    async def _wait_for_caller(self) -> None:
        joined = asyncio.ensure_future(self._caller_joined.wait())
        ended = asyncio.ensure_future(asyncio.shield(self._ended))
        waits: set[asyncio.Future[Any]] = {joined, ended}
        await asyncio.wait(waits, timeout=self._caller_timeout_s,
                           return_when=asyncio.FIRST_COMPLETED)
        joined.cancel()
        ended.cancel()
        if self._caller is None and not self._ended.done():
            log.warning("caller never joined", extra={"room": redact_numbers(self.room_name)})
            self._end(EndReason.TIMEOUT)

    async def _attach_audio(self, session: AgentSession[Any]) -> None:
        """RoomIO reads the caller's track into ``session`` and publishes the agent's voice."""
        if self._room_io is not None:
            raise RuntimeError("attach() was already called for this call")
        identity = self._caller or self._expected_identity or ""
        self._room_io = RoomIO(session, self.room, participant=identity or None,
                               options=room_options(identity, self.sample_rate))
        await self._room_io.start()

    async def _wait_ended(self) -> EndReason:
        return await asyncio.shield(self._ended)

    async def hangup(self) -> None:
        """End the call from our side: LiveKit SIP hangs up when its participant is removed."""
        self._end(EndReason.AGENT_HANGUP)
        if self._caller is None or self._caller_left:
            return
        self._caller_left = True
        removed = await remove_participant(self._api_factory, self.room_name, self._caller)
        log.info("agent hung up", extra={"room": redact_numbers(self.room_name),
                                          "caller_was_present": removed})

    async def aclose(self) -> None:
        self._end(EndReason.AGENT_HANGUP)
        await super().aclose()
        if self._room_io is not None:
            await self._room_io.aclose()
        if self.room.isconnected():
            await self.room.disconnect()

    # --- SIP actions ------------------------------------------------------------------------
    async def _transfer(self, to_e164: str) -> None:
        """TransferSIPParticipant (a SIP REFER): the caller leaves the room for ``to_e164``."""
        if self._caller is None or self._caller_left:
            raise TransportActionError("no caller in the room to transfer")
        request = TransferSIPParticipantRequest(
            room_name=self.room_name, participant_identity=self._caller,
            transfer_to=f"tel:{to_e164}", play_dialtone=True)
        self._transferring = True  # the caller leaving now is the transfer, not a hang-up
        lk = self._api_factory()
        try:
            reply = await lk.sip.transfer_sip_participant(request, timeout=_TRANSFER_TIMEOUT_S)
        except api.ServerError as e:
            self._transfer_failed()
            raise TransportActionError(f"LiveKit refused the transfer: {e.code}") from None
        finally:
            await lk.aclose()
        if reply.status == SIPTransferStatus.STS_TRANSFER_FAILED:
            self._transfer_failed()
            raise TransportActionError("the transfer did not connect")
        self._caller_left = True
        self._end(EndReason.TRANSFERRED)
        log.info("caller transferred", extra={"room": redact_numbers(self.room_name),
                                              "to": mask_phone(to_e164)})

    def _transfer_failed(self) -> None:
        self._transferring = False
        if self._caller_left:  # they hung up while the transfer was being tried
            self._end(EndReason.CALLER_HANGUP)

    async def _send_dtmf(self, digits: str) -> None:
        """Publish each key as SIP DTMF; LiveKit SIP plays it to the phone line."""
        if not self.room.isconnected():
            raise TransportActionError("not connected to the room")
        for key in digits:
            try:
                await self.room.local_participant.publish_dtmf(code=dtmf_code(key), digit=key)
            except Exception as e:  # PublishDTMFError and FFI errors alike
                raise TransportActionError(f"DTMF not sent: {type(e).__name__}") from None

    # --- room events -------------------------------------------------------------------------
    def _is_caller(self, participant: rtc.RemoteParticipant) -> bool:
        if self._expected_identity:
            return participant.identity == self._expected_identity
        return participant.kind == _SIP

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        if self._caller is None and self._is_caller(participant):
            self._caller = participant.identity
            self._caller_joined.set()
            log.info("caller joined", extra={"room": redact_numbers(self.room_name)})

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity != self._caller:
            return
        self._caller_left = True
        if not self._transferring:
            self._end(EndReason.CALLER_HANGUP)

    def _on_room_disconnected(self, reason: object = None) -> None:
        if not self._ended.done():
            log.error("room connection lost", extra={"room": redact_numbers(self.room_name)})
        self._end(EndReason.ERROR)

    def _end(self, reason: EndReason) -> None:
        if not self._ended.done():
            self._ended.set_result(reason)


# --- the busy path: no session, just a message and a hang-up ---------------------------------
def busy_tone_frames(sample_rate: int = 24_000, *, duration_s: float = 2.0,
                     tone_hz: float = 425.0, cadence_s: float = 0.5) -> list[rtc.AudioFrame]:
    """A busy tone (425 Hz, on/off every ``cadence_s``): what the caller hears when no
    synthesized busy message is available."""
    per_frame = sample_rate * FRAME_MS // 1000
    frames = []
    for index in range(math.ceil(duration_s * 1000 / FRAME_MS)):
        start = index * per_frame
        on = int(start / sample_rate / cadence_s) % 2 == 0
        samples = array("h", (
            int(8000 * math.sin(2 * math.pi * tone_hz * (start + i) / sample_rate)) if on else 0
            for i in range(per_frame)
        ))
        frames.append(rtc.AudioFrame(samples.tobytes(), sample_rate, 1, per_frame))
    return frames


async def play_frames(room: rtc.Room, frames: Iterable[rtc.AudioFrame],
                      *, sample_rate: int = 24_000) -> float:
    """Publish the agent's track in ``room``, play ``frames`` (any rate) and return once they
    have played out. Returns the seconds played."""
    source = rtc.AudioSource(sample_rate, 1)
    track = rtc.LocalAudioTrack.create_audio_track(AGENT_TRACK_NAME, source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    publication = await room.local_participant.publish_track(track, options)
    played = 0.0
    try:
        resampler: Resampler | None = None
        for frame in frames:
            if resampler is None:
                resampler = Resampler(frame.sample_rate, sample_rate)
            for out in resampler.push(frame):
                await source.capture_frame(out)
                played += out.duration
        for out in resampler.flush() if resampler is not None else []:
            await source.capture_frame(out)
            played += out.duration
        await source.wait_for_playout()
    finally:
        await room.local_participant.unpublish_track(publication.sid)
        await source.aclose()
    return played


async def play_busy_and_hangup(
    settings: Settings,
    room_name: str,
    *,
    frames: Iterable[rtc.AudioFrame] | None = None,
    caller_identity: str | None = None,
    api_factory: LiveKitApiFactory | None = None,
    caller_timeout_s: float = 10.0,
    room: rtc.Room | None = None,
) -> EndReason:
    """The over-capacity path: join, say the busy message (``frames``, e.g. the TTS of
    ``settings.busy_message``; a busy tone when ``None``), remove the caller, leave.

    Always returns ``REJECTED_BUSY``, the reason the call is recorded with.
    """
    transport = LiveKitTransport(
        settings, room_name, caller_identity=caller_identity, api_factory=api_factory,
        caller_timeout_s=caller_timeout_s, room=room,
    )
    try:
        await transport.connect()
        if not transport.ended:
            await play_frames(transport.room, frames or busy_tone_frames())
            await transport.hangup()
    finally:
        await transport.aclose()
    log.info("caller rejected busy", extra={"room": redact_numbers(room_name)})
    return EndReason.REJECTED_BUSY
