"""The wire of a phone line: what crosses the socket between a call and its caller host.

Both ends use it and nothing else should: the call's side (``voice_ai.pipeline.line``) and the
caller host's side (``voice_ai.pipeline.line_exchange``).

Each message is one byte of kind, four bytes of length (big endian), the payload. Caller audio
goes one 20 ms frame per message at real-time pace (``SimulatedCaller`` paces it); agent audio
goes as the session produces it (faster than real time, the caller's playout clock decides when
it is heard); control messages are JSON. Per-frame Ray calls at 50 frames a second per call
would cost more than the call; a socket costs two small reads per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from enum import IntEnum
from typing import Any

from livekit import rtc

from voice_ai.errors import VoiceAIError

__all__ = ["Leg", "LineError", "MessageKind", "pack", "pack_audio", "pack_json", "read_message",
           "unpack_audio"]

_HEADER = struct.Struct(">BI")
_AUDIO_HEADER = struct.Struct(">IH")  # sample rate, channels
_MAX_MESSAGE = 1 << 20
_DRAIN_ABOVE = 256 * 1024  # bytes queued on a socket before a writer waits for the peer


class LineError(VoiceAIError):
    """The line could not be set up: no caller host, a wrong token, an unknown call, or the
    caller was not ready in time; or a message on it was too large. The message says which."""


class MessageKind(IntEnum):
    HELLO = 1  # call -> caller: {"call_id", "token"}
    WELCOME = 2  # caller -> call: {"direction", "caller_masked"} once the caller is ready
    START = 3  # call -> caller: the agent listens; the caller's script begins (once)
    CALLER_AUDIO = 4  # caller -> call: one 20 ms frame, PCM16 mono 16 kHz
    AGENT_AUDIO = 5  # call -> caller: sample rate, channels, PCM16
    AGENT_FLUSH = 6  # call -> caller: the agent's current reply is complete
    AGENT_CLEAR = 7  # call -> caller: barge-in, the rest of the reply is never played
    MARKS = 8  # caller -> call: [[ended_speaking_at, text, agent_audio_at | null], ...]
    ACTION = 9  # call -> caller: {"transfer": e164} | {"dtmf": digits} | {"hangup": true}
    ENDED = 10  # caller -> call: {"reason", "unanswered", "recording_path", ...}


def pack(kind: MessageKind, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def pack_json(kind: MessageKind, body: Any) -> bytes:
    return pack(kind, json.dumps(body, separators=(",", ":")).encode())


async def read_message(reader: asyncio.StreamReader) -> tuple[MessageKind, bytes] | None:
    """The next message, or ``None`` at the end of the stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
        kind, size = _HEADER.unpack(header)
        if size > _MAX_MESSAGE:
            raise LineError(f"line message of {size} bytes (at most {_MAX_MESSAGE})")
        return MessageKind(kind), await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def pack_audio(frame: rtc.AudioFrame) -> bytes:
    """An ``AGENT_AUDIO`` payload."""
    return (_AUDIO_HEADER.pack(frame.sample_rate, frame.num_channels)
            + frame.data.cast("B").tobytes())


def unpack_audio(payload: bytes) -> rtc.AudioFrame:
    rate, channels = _AUDIO_HEADER.unpack_from(payload)
    pcm = payload[_AUDIO_HEADER.size:]
    return rtc.AudioFrame(pcm, rate, channels, len(pcm) // (2 * channels))


class Leg:
    """One connected socket: writes are queued at once, a writer waits only when the peer
    falls far behind."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def send_and_drain(self, data: bytes) -> None:
        self.send(data)
        if self.writer.transport.get_write_buffer_size() > _DRAIN_ABOVE:
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
