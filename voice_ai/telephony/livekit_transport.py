"""``LiveKitTransport``: one call's audio through a LiveKit room.

The agent joins the room with its own short-lived token, follows the SIP participant (the
caller), publishes its voice as a microphone track, and reports how the call ended:

- the caller's participant leaves           -> ``CALLER_HANGUP``
- ``hangup()`` (removes the SIP participant)  -> ``AGENT_HANGUP``
- no caller within ``caller_timeout_s``, or the call outlives ``MAX_CALL_DURATION_S`` -> ``TIMEOUT``
- the room connection drops                  -> ``ERROR``

Construct it inside the running event loop (it creates the ``rtc.AudioSource``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from functools import partial

from livekit import api, rtc
from livekit.agents.voice.io import AudioInput, AudioOutput
from livekit.protocol.room import RoomParticipantIdentity

from voice_ai.config import Settings
from voice_ai.pipeline.transport import CallTransport
from voice_ai.records import CallDirection, EndReason
from voice_ai.telephony.credentials import livekit_credentials, open_livekit_api
from voice_ai.telephony.phone import redact_numbers
from voice_ai.telephony.room_audio import (
    ParticipantAudioInput,
    RoomAudioOutput,
    busy_tone_frames,
    say,
)
from voice_ai.telephony.tokens import mint_agent_token

__all__ = ["LiveKitApiFactory", "LiveKitTransport", "play_busy_and_hangup", "remove_participant"]

log = logging.getLogger("voice_ai.telephony")

LiveKitApiFactory = Callable[[], api.LiveKitAPI]
AGENT_TRACK_NAME = "agent-voice"


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
        input_sample_rate: int = 24_000,
        output_sample_rate: int = 24_000,
        room: rtc.Room | None = None,
    ) -> None:
        self.direction = direction
        self.caller_masked = caller_masked
        self.room_name = room_name
        self.room = room or rtc.Room()
        self._settings = settings
        self._api_factory = api_factory or partial(open_livekit_api, settings)
        self._expected_identity = caller_identity
        self._caller_timeout_s = caller_timeout_s
        self._input = ParticipantAudioInput(sample_rate=input_sample_rate)
        self._source = rtc.AudioSource(output_sample_rate, 1)
        self._output = RoomAudioOutput(self._source)
        self._ended: asyncio.Future[EndReason] = asyncio.get_running_loop().create_future()
        self._caller: str | None = None
        self._caller_left = False
        self._caller_joined = asyncio.Event()
        self._finished = asyncio.Event()
        self.room.on("participant_connected", self._on_participant_connected)
        self.room.on("track_subscribed", self._on_track_subscribed)
        self.room.on("participant_disconnected", self._on_participant_disconnected)
        self.room.on("disconnected", self._on_room_disconnected)

    # --- CallTransport ---------------------------------------------------------------------
    @property
    def audio_input(self) -> AudioInput:
        return self._input

    @property
    def audio_output(self) -> AudioOutput:
        return self._output

    @property
    def caller_identity(self) -> str | None:
        return self._caller

    @property
    def ended(self) -> bool:
        return self._ended.done()

    async def connect(self) -> None:
        """Join, publish the agent's track, then wait for the caller (inbound: usually there
        already; outbound: until they answer). On timeout the call ends with ``TIMEOUT``."""
        creds = livekit_credentials(self._settings)
        token = mint_agent_token(self._settings, self.room_name)
        try:
            await self.room.connect(creds.url, token, rtc.RoomOptions(auto_subscribe=True))
            track = rtc.LocalAudioTrack.create_audio_track(AGENT_TRACK_NAME, self._source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await self.room.local_participant.publish_track(track, options)
        except Exception:
            self._end(EndReason.ERROR)
            raise
        for participant in list(self.room.remote_participants.values()):
            self._on_participant_connected(participant)
        await self._wait_for_caller()

    async def _wait_for_caller(self) -> None:
        waits = {asyncio.ensure_future(e.wait()) for e in (self._caller_joined, self._finished)}
        done, pending = await asyncio.wait(
            waits, timeout=self._caller_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        for waiting in pending:
            waiting.cancel()
        if not done:
            log.warning("caller never joined", extra={"room": redact_numbers(self.room_name)})
            self._end(EndReason.TIMEOUT)

    async def wait_ended(self) -> EndReason:
        try:
            return await asyncio.wait_for(
                asyncio.shield(self._ended), self._settings.max_call_duration_s
            )
        except TimeoutError:
            self._end(EndReason.TIMEOUT)
            return self._ended.result()

    async def hangup(self) -> None:
        """End the call from our side: LiveKit SIP hangs up when its participant is removed."""
        self._end(EndReason.AGENT_HANGUP)
        if self._caller is None or self._caller_left:
            return
        removed = await remove_participant(self._api_factory, self.room_name, self._caller)
        self._caller_left = True
        log.info("agent hung up", extra={"room": redact_numbers(self.room_name),
                                          "caller_was_present": removed})

    async def aclose(self) -> None:
        self._end(EndReason.AGENT_HANGUP)
        await self._input.aclose()
        await self._output.aclose()
        if self.room.isconnected():
            await self.room.disconnect()

    # --- room events -------------------------------------------------------------------------
    def _is_caller(self, participant: rtc.RemoteParticipant) -> bool:
        if self._caller is not None:
            return participant.identity == self._caller
        if self._expected_identity:
            return participant.identity == self._expected_identity
        return participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        if self._caller is None and self._is_caller(participant):
            self._caller = participant.identity
            self._caller_joined.set()
            log.info("caller joined", extra={"room": redact_numbers(self.room_name)})

    def _on_track_subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        self._on_participant_connected(participant)
        if track.kind == rtc.TrackKind.KIND_AUDIO and participant.identity == self._caller:
            self._input.attach_track(track)

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self._caller:
            self._caller_left = True
            self._end(EndReason.CALLER_HANGUP)

    def _on_room_disconnected(self, reason: object = None) -> None:
        if not self._ended.done():
            log.error("room connection lost", extra={"room": redact_numbers(self.room_name)})
        self._end(EndReason.ERROR)

    def _end(self, reason: EndReason) -> None:
        if not self._ended.done():
            self._ended.set_result(reason)
            self._finished.set()


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
            sample_rate = transport.audio_output.sample_rate or 24_000
            await say(transport.audio_output, frames or busy_tone_frames(sample_rate))
            await transport.hangup()
    finally:
        await transport.aclose()
    log.info("caller rejected busy", extra={"room": redact_numbers(room_name)})
    return EndReason.REJECTED_BUSY
