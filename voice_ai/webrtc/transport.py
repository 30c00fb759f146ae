"""``WebRtcTransport``: a call from a browser page, over WebRTC (aiortc), no server in between.

The page posts an SDP offer (microphone track + a data channel, ICE gathered); the call actor
answers it (``accept``), the browser connects straight to the call actor's process, and the call
runs on the same ``CallSession`` path as LiveKit and simulated calls:

- caller audio: the browser's Opus track, decoded by aiortc (48 kHz), mono 16 kHz into the
  session in 20 ms frames;
- agent audio: the session's audio output feeds a paced 48 kHz track that aiortc encodes as
  Opus; ``clear_buffer`` (barge-in) drops what is queued, so the caller stops hearing the agent
  within one jitter buffer;
- the data channel (the page's, label ``events``) carries JSON lines to the page: the live
  transcript of both sides, the agent's state, each finished turn's latency and providers, and
  how the call ended. The page sends ``{"type": "hangup"}``.

ICE uses host candidates only (no STUN): a browser on the same network reaches the call actor
directly. Across networks a TURN server is needed (docs/webrtc.md).

How the call ends: the page hangs up or closes the connection -> ``CALLER_HANGUP``; the
connection fails -> ``ERROR``; no ICE within ``ice_timeout_s`` of the answer -> ``TIMEOUT``
(an abandoned offer: the call ends and frees its admission slot); ``hangup()`` ->
``AGENT_HANGUP``; ``transfer()`` -> ``TRANSFERRED`` (the page is told; a browser has no phone
leg to hand over).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.llm import ChatMessage
from livekit.agents.voice.io import AudioInput, AudioOutput, AudioOutputCapabilities

from voice_ai.audio import AnyRateResampler, Resampler, downmix, frame_from_pcm, pcm_of
from voice_ai.pipeline.transport import CallTransport
from voice_ai.records import CallDirection, EndReason, TurnTimings
from voice_ai.telephony.phone import mask_phone
from voice_ai.webrtc.signalling import OfferError, SdpAnswer, SdpOffer

__all__ = ["CALLER_SAMPLE_RATE", "WIRE_SAMPLE_RATE", "WebRtcTransport"]

log = logging.getLogger("voice_ai.webrtc")

WIRE_SAMPLE_RATE = 48_000  # Opus's clock; aiortc decodes to and encodes from 48 kHz
CALLER_SAMPLE_RATE = 16_000  # what VAD and whisper run at
FRAME_S = 0.02
_WIRE_FRAME = int(WIRE_SAMPLE_RATE * FRAME_S)  # samples per 20 ms
_WIRE_FRAME_BYTES = _WIRE_FRAME * 2
_MAX_LAG_S = 0.2  # the sender fell this far behind real time: restart its clock, no burst


class _CallerAudio(AudioInput):
    """The browser's microphone, mono 16 kHz. Ends when the track does."""

    def __init__(self) -> None:
        super().__init__(label="WebRTC-caller")
        self._frames: asyncio.Queue[rtc.AudioFrame | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._ended = False

    def read(self, track: MediaStreamTrack) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(track), name="webrtc-caller-audio")

    async def _read(self, track: MediaStreamTrack) -> None:
        resampler = Resampler(WIRE_SAMPLE_RATE, CALLER_SAMPLE_RATE)
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                pcm = downmix(frame.to_ndarray().tobytes(), len(frame.layout.channels))
                if frame.sample_rate != resampler.input_rate:
                    resampler = Resampler(frame.sample_rate, CALLER_SAMPLE_RATE)
                for out in resampler.push(frame_from_pcm(pcm, frame.sample_rate)):
                    self._frames.put_nowait(out)
        except MediaStreamError:  # the browser stopped sending: the track ended
            pass
        finally:
            self._frames.put_nowait(None)

    async def __anext__(self) -> rtc.AudioFrame:
        if self._ended:
            raise StopAsyncIteration
        frame = await self._frames.get()
        if frame is None:
            self._ended = True
            raise StopAsyncIteration
        return frame

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class _AgentVoice(AudioOutput):
    """The session's audio output: queues the agent's voice for ``_AgentTrack``, which plays it
    at real time and reports playback as it actually goes out on the wire."""

    def __init__(self) -> None:
        super().__init__(label="WebRTC-agent", capabilities=AudioOutputCapabilities(pause=False),
                         sample_rate=WIRE_SAMPLE_RATE)
        self._resampler = AnyRateResampler(WIRE_SAMPLE_RATE)
        self._queued = bytearray()
        self._segment = False  # a segment is being captured or played
        self._flushed = False  # the segment's last frame has been captured
        self._started = False  # its first 20 ms went out
        self._played_s = 0.0
        self.first_audio_at: list[float] = []  # wall time each segment started playing

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if not self._segment:
            self._segment, self._flushed, self._started, self._played_s = True, False, False, 0.0
        self._queued += pcm_of(self._resampler.push(frame))

    def flush(self) -> None:
        super().flush()
        if not self._segment:
            return
        self._queued += pcm_of(self._resampler.flush())
        self._flushed = True
        if not self._queued:
            self._finish(interrupted=False)

    def clear_buffer(self) -> None:
        """Barge-in: what has not gone out yet never will."""
        self._resampler.flush()
        self._queued.clear()
        if self._segment:
            self._finish(interrupted=True)

    def next_chunk(self) -> bytes:
        """20 ms of 48 kHz PCM for the wire: the agent's voice, or silence between replies."""
        if not self._segment or (len(self._queued) < _WIRE_FRAME_BYTES and not self._flushed):
            return bytes(_WIRE_FRAME_BYTES)  # nothing to say, or the TTS is behind
        chunk = bytes(self._queued[:_WIRE_FRAME_BYTES]).ljust(_WIRE_FRAME_BYTES, b"\0")
        del self._queued[:_WIRE_FRAME_BYTES]
        if not self._started:
            self._started = True
            now = time.time()
            self.first_audio_at.append(now)
            self.on_playback_started(created_at=now)
        self._played_s += FRAME_S
        if self._flushed and not self._queued:
            self._finish(interrupted=False)
        return chunk

    def _finish(self, *, interrupted: bool) -> None:
        self._segment = False
        self.on_playback_finished(playback_position=self._played_s, interrupted=interrupted)


class _AgentTrack(MediaStreamTrack):
    """aiortc pulls 20 ms frames from here at real time and encodes them as Opus."""

    kind = "audio"

    def __init__(self, voice: _AgentVoice, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._voice = voice
        self._clock = clock
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock()
        if self._start is None or now - (self._start + self._pts / WIRE_SAMPLE_RATE) > _MAX_LAG_S:
            self._start = now - self._pts / WIRE_SAMPLE_RATE
        wait = self._start + self._pts / WIRE_SAMPLE_RATE - now
        if wait > 0:
            await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=_WIRE_FRAME)
        frame.planes[0].update(self._voice.next_chunk())
        frame.sample_rate = WIRE_SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, WIRE_SAMPLE_RATE)
        self._pts += _WIRE_FRAME
        return frame


class WebRtcTransport(CallTransport):
    """One browser call. ``await accept()`` answers the offer; then the usual transport life."""

    direction = CallDirection.WEBRTC

    def __init__(self, offer: SdpOffer, *, ice_timeout_s: float = 15.0,
                 caller_masked: str = "browser") -> None:
        self.offer = offer
        self.caller_masked = caller_masked
        self._ice_timeout_s = ice_timeout_s
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates only
        self._input = _CallerAudio()
        self._voice = _AgentVoice()
        self._channel: RTCDataChannel | None = None
        self._outbox: list[str] = []
        self._ended: asyncio.Future[EndReason] = asyncio.get_running_loop().create_future()
        self._connected = asyncio.Event()
        self._session: AgentSession[Any] | None = None
        self._pc.on("track", self._on_track)
        self._pc.on("datachannel", self._on_datachannel)
        self._pc.on("connectionstatechange", self._on_connection_state)

    @property
    def audio_input(self) -> AudioInput:
        return self._input

    @property
    def audio_output(self) -> AudioOutput:
        return self._voice

    @property
    def ended(self) -> bool:
        return self._ended.done()

    @property
    def agent_audio_started_at(self) -> list[float]:
        """Wall-clock time each agent reply's first 20 ms went out on the wire."""
        return list(self._voice.first_audio_at)

    # --- signalling and connection ---------------------------------------------------------
    async def accept(self) -> SdpAnswer:
        """Answer the offer: our audio track on the browser's transceiver, ICE gathered."""
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(self.offer.sdp, "offer"))
        except Exception as e:  # aiortc refuses what it cannot negotiate (ValueError mostly)
            await self._pc.close()
            raise OfferError(f"SDP offer not accepted: {e}") from None
        self._pc.addTrack(_AgentTrack(self._voice))
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        local = self._pc.localDescription
        self._answered_at = time.monotonic()
        return SdpAnswer(sdp=local.sdp)

    async def connect(self) -> None:
        """Wait for ICE and DTLS; no connection within ``ice_timeout_s`` of the answer is an
        abandoned offer and the call ends with ``TIMEOUT``."""
        if self._pc.localDescription is None:
            await self.accept()
        left = self._ice_timeout_s - (time.monotonic() - self._answered_at)
        connected = asyncio.ensure_future(self._connected.wait())
        ended = asyncio.ensure_future(asyncio.shield(self._ended))
        waits: set[asyncio.Future[Any]] = {connected, ended}
        await asyncio.wait(waits, timeout=max(0.0, left), return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        ended.cancel()
        if not self._connected.is_set() and not self._ended.done():
            self.end_detail = (f"the browser never connected (no ICE within "
                               f"{self._ice_timeout_s:g} s, WEBRTC_ICE_TIMEOUT_S)")
            log.warning("browser call abandoned before ICE connected")
            self._end(EndReason.TIMEOUT)

    async def _attach_audio(self, session: AgentSession[Any]) -> None:
        await super()._attach_audio(session)
        self._session = session
        session.on("user_input_transcribed", self._on_caller_words)
        session.on("conversation_item_added", self._on_item)
        session.on("agent_state_changed", self._on_agent_state)

    async def _wait_ended(self) -> EndReason:
        return await asyncio.shield(self._ended)

    async def hangup(self) -> None:
        self._end(EndReason.AGENT_HANGUP)

    async def aclose(self) -> None:
        self._end(EndReason.AGENT_HANGUP)
        await super().aclose()
        if self._session is not None:
            self._session.off("user_input_transcribed", self._on_caller_words)
            self._session.off("conversation_item_added", self._on_item)
            self._session.off("agent_state_changed", self._on_agent_state)
        await self._input.aclose()
        await self._let_the_page_hear_the_end()
        await self._pc.close()

    async def _let_the_page_hear_the_end(self, timeout_s: float = 0.5) -> None:
        """Closing drops what the data channel has not sent yet (the ``end`` message)."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return
        if channel.bufferedAmount > 0:
            drained = asyncio.Event()
            channel.once("bufferedamountlow", drained.set)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), timeout_s)
        await asyncio.sleep(0.05)  # out of the buffer is not yet on the wire

    # --- actions -----------------------------------------------------------------------------
    async def _transfer(self, to_e164: str) -> None:
        """A browser has no phone leg to hand over: the page is told who would take the call,
        and the call ends as transferred."""
        self._send({"type": "transfer", "to": mask_phone(to_e164)})
        self._end(EndReason.TRANSFERRED)

    async def _send_dtmf(self, digits: str) -> None:
        self._send({"type": "dtmf", "digits": digits})

    def report_turn(self, turn: TurnTimings) -> None:
        def ms(seconds: float | None) -> int | None:
            return None if seconds is None else round(seconds * 1000)

        self._send({"type": "turn", "index": turn.index, "e2e_ms": ms(turn.e2e_s),
                    "stt_ms": ms(turn.stt_s), "llm_ms": ms(turn.llm_ttft_s),
                    "tts_ms": ms(turn.tts_ttfb_s), "fallback": turn.fallback_used,
                    "providers": {"stt": turn.stt_provider, "llm": turn.llm_provider,
                                  "tts": turn.tts_provider}})

    # --- events ------------------------------------------------------------------------------
    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._input.read(track)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        channel.on("message", self._on_page_message)
        channel.on("open", self._drain_outbox)
        if channel.readyState == "open":
            self._drain_outbox()

    def _on_page_message(self, message: object) -> None:
        try:
            kind = json.loads(message)["type"] if isinstance(message, str) else None
        except (ValueError, KeyError, TypeError):
            kind = None
        if kind == "hangup":
            self._end(EndReason.CALLER_HANGUP)

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected":
            self._connected.set()
        elif state == "failed":
            self.end_detail = self.end_detail or "the browser's connection failed"
            self._end(EndReason.ERROR if self._connected.is_set() else EndReason.TIMEOUT)
        elif state == "closed":
            self._end(EndReason.CALLER_HANGUP)

    def _on_caller_words(self, ev: Any) -> None:
        self._send({"type": "transcript", "role": "caller", "text": ev.transcript,
                    "final": bool(ev.is_final)})

    def _on_item(self, ev: Any) -> None:
        item = ev.item
        if isinstance(item, ChatMessage) and item.role == "assistant":
            self._send({"type": "transcript", "role": "agent", "final": True,
                        "text": (item.text_content or "").strip(),
                        "interrupted": bool(item.interrupted)})

    def _on_agent_state(self, ev: Any) -> None:
        self._send({"type": "state", "agent": str(ev.new_state)})

    # --- the page's data channel ------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        self._outbox.append(json.dumps(message))
        self._drain_outbox()

    def _drain_outbox(self) -> None:
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return
        while self._outbox:
            channel.send(self._outbox.pop(0))

    def _end(self, reason: EndReason) -> None:
        if self._ended.done():
            return
        self._ended.set_result(reason)
        self._send({"type": "end", "reason": reason.value, "outcome": reason.outcome.value})
