"""An aiortc peer that does what the call page does: a microphone track, the ``events`` data
channel, a non-trickle offer, and an ear on the agent's track (when it was loud)."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from voice_ai.audio import rms_dbfs
from voice_ai.webrtc.signalling import SdpAnswer, SdpOffer

__all__ = ["FRAME", "RATE", "BrowserPeer", "Mic"]

RATE = 48_000
FRAME = 960


class Mic(MediaStreamTrack):
    """The browser's microphone: ``pcm`` (48 kHz mono) once, then silence, in real time."""

    kind = "audio"

    def __init__(self, pcm: bytes) -> None:
        super().__init__()
        self._pcm, self._pts, self._start = pcm, 0, time.monotonic()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await asyncio.sleep(max(0.0, self._start + self._pts / RATE - time.monotonic()))
        chunk = self._pcm[self._pts * 2 : (self._pts + FRAME) * 2].ljust(FRAME * 2, b"\0")
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(chunk)
        frame.sample_rate, frame.pts = RATE, self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


class BrowserPeer:
    """What the call page does: mic + data channel, non-trickle offer, listen to the agent."""

    def __init__(self, mic_pcm: bytes = b"") -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(Mic(mic_pcm))
        self.channel = self.pc.createDataChannel("events")
        self.messages: list[dict[str, Any]] = []
        self.loud_at: list[float] = []  # wall time of each agent frame above -40 dBFS
        self.loud_s = 0.0  # how much agent audio above -40 dBFS arrived, in seconds
        self._listener: asyncio.Task[None] | None = None
        self.channel.on("message", lambda m: self.messages.append(json.loads(m)))
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._listener = asyncio.create_task(self._listen(track))

    async def _listen(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                if rms_dbfs(frame.to_ndarray().tobytes()) > -40:
                    self.loud_at.append(time.time())
                    self.loud_s += frame.samples / frame.sample_rate
        except MediaStreamError:
            pass

    async def offer(self) -> SdpOffer:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return SdpOffer(sdp=self.pc.localDescription.sdp)

    async def answer(self, answer: SdpAnswer) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.sdp, answer.type))

    async def message(self, kind: str, timeout_s: float = 3.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in self.messages:
                if m["type"] == kind:
                    return m
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind!r} message; got {self.messages}")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        await self.pc.close()
