"""A non-streaming STT (whisper) made a stream by the VAD, with an honest early transcript.

Like livekit's ``stt.StreamAdapter``: the VAD cuts the caller's audio into utterances and each
utterance is recognized once the VAD has heard ``min_silence`` of quiet (END_OF_SPEECH, then
FINAL_TRANSCRIPT). With ``preflight_silence_s`` set, recognition starts earlier, at the first
``preflight_silence_s`` of quiet after speech, on the speech so far:

- its text is sent at once as a PREFLIGHT_TRANSCRIPT (livekit starts the LLM on it:
  preemptive generation);
- if the caller stays silent until the VAD's end of speech, the FINAL_TRANSCRIPT is that same
  text (the audio since then is silence: nothing is recognized twice);
- if the caller speaks again first, the early text is discarded and the utterance is
  recognized whole at its end, as without a preflight; livekit drops a preemptive reply
  whose transcript no longer matches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from livekit import rtc
from livekit.agents import APIConnectOptions, stt, vad
from livekit.agents.language import LanguageCode

from voice_ai.audio import concat_frames

__all__ = ["SegmentedRecognition"]

logger = logging.getLogger(__name__)


class SegmentedRecognition:
    """One call's recognition over a non-streaming ``stt``: push frames, iterate events."""

    def __init__(self, recognizer: stt.STT[Any], vad_model: vad.VAD, *, language: str,
                 conn_options: APIConnectOptions, preflight_silence_s: float | None = None
                 ) -> None:
        self._stt = recognizer
        self._vad = vad_model.stream()
        self._language = language
        self._options = conn_options
        self._preflight_s = preflight_silence_s
        self._events: asyncio.Queue[stt.SpeechEvent | BaseException | None] = asyncio.Queue()
        self._speech: list[rtc.AudioFrame] = []
        self._early: asyncio.Task[str] | None = None
        self._last_silence = 0.0
        self._task = asyncio.create_task(self._run())

    # --- input -------------------------------------------------------------------------------
    def push_frame(self, frame: rtc.AudioFrame) -> None:
        self._vad.push_frame(frame)

    def flush(self) -> None:
        self._vad.flush()

    def end_input(self) -> None:
        self._vad.end_input()

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._early is not None:
            self._early.cancel()
        await self._vad.aclose()

    # --- output ------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[stt.SpeechEvent]:
        while (item := await self._events.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    async def _run(self) -> None:
        try:
            async for ev in self._vad:
                await self._on_vad(ev)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._events.put_nowait(e)
        self._events.put_nowait(None)

    async def _on_vad(self, ev: vad.VADEvent) -> None:
        if ev.type == vad.VADEventType.START_OF_SPEECH:
            self._speech = list(ev.frames)
            self._discard_early()
            self._events.put_nowait(stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH))
        elif ev.type == vad.VADEventType.INFERENCE_DONE:
            if not ev.speaking:
                return
            self._speech.extend(ev.frames)
            silence = ev.raw_accumulated_silence
            if silence < self._last_silence:  # the caller spoke again after the pause
                self._discard_early()
            self._last_silence = silence
            if (self._preflight_s is not None and self._early is None
                    and silence >= self._preflight_s):
                self._early = asyncio.create_task(self._early_text(list(self._speech)))
                self._early.add_done_callback(_consume)
        elif ev.type == vad.VADEventType.END_OF_SPEECH:
            speech_end = time.time() - ev.silence_duration - ev.inference_duration
            self._events.put_nowait(stt.SpeechEvent(stt.SpeechEventType.END_OF_SPEECH,
                                                    speech_end_time=speech_end))
            early, self._early = self._early, None
            self._last_silence = 0.0
            text = await early if early is not None else await self._recognize(ev.frames)
            if text:
                self._events.put_nowait(self._transcript(
                    stt.SpeechEventType.FINAL_TRANSCRIPT, text, speech_end))

    async def _early_text(self, frames: list[rtc.AudioFrame]) -> str:
        text = await self._recognize(frames)
        if text and self._early is asyncio.current_task():
            self._events.put_nowait(self._transcript(
                stt.SpeechEventType.PREFLIGHT_TRANSCRIPT, text, None))
        return text

    def _discard_early(self) -> None:
        if self._early is not None:
            self._early.cancel()
            self._early = None

    async def _recognize(self, frames: list[rtc.AudioFrame]) -> str:
        if not frames:
            return ""
        ev = await self._stt.recognize(concat_frames(frames), language=self._language,
                                       conn_options=self._options)
        return ev.alternatives[0].text.strip() if ev.alternatives else ""

    def _transcript(self, kind: stt.SpeechEventType, text: str,
                    speech_end: float | None) -> stt.SpeechEvent:
        return stt.SpeechEvent(type=kind, speech_end_time=speech_end, alternatives=[
            stt.SpeechData(language=LanguageCode(self._language), text=text)])


def _consume(task: asyncio.Task[str]) -> None:
    if not task.cancelled():
        task.exception()  # a discarded early recognition's error is not the call's
