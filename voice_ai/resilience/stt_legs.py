"""A *leg* of a call's speech recognition: one recognizer the STT stage
(``voice_ai.resilience.stt_stage``) feeds for part of the call, until the stage switches to
another (the fallback, or the provider again on a new connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

from livekit import rtc
from livekit.agents import stt

__all__ = ["ENDPOINT_WAIT_S", "Leg", "StreamLeg"]

ENDPOINT_WAIT_S = 0.05
"""How long a final waits for the end of speech that may follow it (``StreamLeg.events``)."""


class Leg(Protocol):
    """What the stage drives: one recognizer for part of a call (a streaming provider's
    stream, or ``SegmentedRecognition`` on the fallback)."""

    def push_frame(self, frame: rtc.AudioFrame) -> None: ...
    def flush(self) -> None: ...
    def end_input(self) -> None: ...
    def events(self) -> AsyncIterator[stt.SpeechEvent]: ...
    async def aclose(self) -> None: ...


class StreamLeg:
    """A streaming provider's ``RecognizeStream`` as a leg. Input to a stream that already
    failed is dropped: the stage keeps the turn's audio and replays it into the next leg."""

    def __init__(self, stream: stt.RecognizeStream) -> None:
        self._stream = stream

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        with contextlib.suppress(RuntimeError):  # closed: it failed, the stage moves on
            self._stream.push_frame(frame)

    def flush(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._stream.flush()

    def end_input(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._stream.end_input()

    async def events(self) -> AsyncIterator[stt.SpeechEvent]:
        """The stream's events, with one change of order: a final that ends the caller's
        speech (Deepgram's ``speech_final``: the plugin emits FINAL_TRANSCRIPT, then
        END_OF_SPEECH, from one message) comes after its END_OF_SPEECH. In "stt" turn
        detection livekit starts the preemptive reply on a final only once the end of speech
        is known; in the provider's order every reply waited for the turn's commit. A final
        that no end of speech follows within ``ENDPOINT_WAIT_S`` goes on alone."""
        it = aiter(self._stream)
        pending: asyncio.Future[stt.SpeechEvent | None] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(_next_event(it))
                ev = await pending
                pending = None
                if ev is None:
                    return
                if ev.type is stt.SpeechEventType.FINAL_TRANSCRIPT:
                    pending = asyncio.ensure_future(_next_event(it))
                    await asyncio.wait({pending}, timeout=ENDPOINT_WAIT_S)
                    after = pending.result() if pending.done() and not pending.exception() else None
                    if after is not None and after.type is stt.SpeechEventType.END_OF_SPEECH:
                        pending = None
                        yield after
                yield ev
        finally:
            if pending is not None:
                pending.cancel()

    async def aclose(self) -> None:
        await self._stream.aclose()


async def _next_event(it: AsyncIterator[stt.SpeechEvent]) -> stt.SpeechEvent | None:
    """The next event, or None at the end (a task cannot end in StopAsyncIteration)."""
    try:
        return await anext(it)
    except StopAsyncIteration:
        return None
