"""The simulated caller: a scenario spoken with Piper, fed as 20 ms frames at real-time pace.

It is a ``CallTransport`` like LiveKit's: the session reads ``audio_input`` and writes
``audio_output`` and cannot tell the difference. Because the script knows exactly when the
caller stops speaking and the output knows when the agent's first audio would play, it
measures the true response latency of every turn (``speech_marks``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import tts
from livekit.agents.voice.io import AudioInput, AudioOutput, AudioOutputCapabilities

from voice_ai.audio import pcm_of, resample_pcm, slice_frames
from voice_ai.pipeline.recorder import ConversationRecorder
from voice_ai.pipeline.scenario import Scenario
from voice_ai.pipeline.transport import CallerSpeechMark, CallTransport
from voice_ai.records import CallDirection, EndReason
from voice_ai.simulators.transcript import WINDOW_S, voiced_windows

__all__ = [
    "CALLER_SAMPLE_RATE", "CallerVoice", "PhoneAudioOutput", "SimulatedCaller", "quiet_tail_s",
]

CALLER_SAMPLE_RATE = 16_000
FRAME_S = 0.02
_SAMPLES_PER_FRAME = int(CALLER_SAMPLE_RATE * FRAME_S)
_POLL_S = 0.01


class CallerVoice(Protocol):
    """What the simulated caller speaks with (Piper, whatever the agent's own TTS is): an
    engine streaming PCM bytes, or a livekit ``tts.TTS`` (both are accepted)."""

    @property
    def sample_rate(self) -> int: ...

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Mono 16-bit PCM at ``sample_rate``, in chunks."""
        ...


def quiet_tail_s(pcm16: bytes) -> float:
    """Seconds of a line's audio after its last speech window (the Deepgram simulator's
    measure of speech, ``SPEECH_RMS``); 0 when none of it is speech."""
    voiced = voiced_windows(pcm16, CALLER_SAMPLE_RATE)
    if True not in voiced:
        return 0.0
    last = len(voiced) - 1 - voiced[::-1].index(True)
    return max(0.0, len(pcm16) / 2 / CALLER_SAMPLE_RATE - (last + 1) * WINDOW_S)


class _CallerAudioInput(AudioInput):
    """Silence, or the current utterance, one 20 ms frame per 20 ms of wall-clock time."""

    def __init__(self, recorder: ConversationRecorder | None, clock: Callable[[], float]) -> None:
        super().__init__(label="simulated-caller")
        self._speech: deque[bytes] = deque()
        self._silence = bytes(_SAMPLES_PER_FRAME * 2)
        self._recorder = recorder
        self._clock = clock
        self._next_at: float | None = None
        self._closed = False
        self.utterance_ended_at: float | None = None
        """When the caller stopped speaking: the end of the line's last speech window, not of
        its audio (Piper ends a line with ~0.2 s of near silence, which is not speech)."""
        self._quiet_tail_s = 0.0

    def say(self, frames: list[bytes]) -> None:
        self.utterance_ended_at = None
        self._quiet_tail_s = quiet_tail_s(b"".join(frames))
        self._speech.extend(frames)

    @property
    def speaking(self) -> bool:
        return bool(self._speech)

    def close(self) -> None:
        self._closed = True

    async def __anext__(self) -> rtc.AudioFrame:
        data = await self.next_pcm()
        return rtc.AudioFrame(data, CALLER_SAMPLE_RATE, 1, _SAMPLES_PER_FRAME)

    async def next_pcm(self) -> bytes:
        """The next 20 ms of the caller's line (PCM16, 16 kHz), when it is due; a line
        (``voice_ai.pipeline.line``) sends these bytes as they are."""
        if self._closed:
            raise StopAsyncIteration
        now = self._clock()
        if self._next_at is None:
            self._next_at = now
        elif self._next_at > now:
            await asyncio.sleep(self._next_at - now)
        at = self._next_at
        self._next_at = at + FRAME_S
        if self._speech:
            data = self._speech.popleft()
            if not self._speech:
                self.utterance_ended_at = at + FRAME_S - self._quiet_tail_s
        else:
            data = self._silence
        if self._recorder is not None:
            self._recorder.add_caller(data, at=at)
        return data


class PhoneAudioOutput(AudioOutput):
    """Plays the agent's audio into a recorder as if through a phone: in real time.

    Frames arrive faster than real time; the playout clock decides when each would be heard,
    which is what the caller (and the response-latency measurement) experiences. The call side
    of a line (``voice_ai.pipeline.line``) keeps the same clock for the session's playback
    events, with no recorder.
    """

    def __init__(self, recorder: ConversationRecorder | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(label="simulated-phone", capabilities=AudioOutputCapabilities(pause=False))
        self._recorder = recorder
        self._clock = clock
        self._playout_end = 0.0
        self._segment_start: float | None = None
        self._segment_s = 0.0
        self._finish_task: asyncio.Task[None] | None = None
        self.segment_starts: list[float] = []

    @property
    def speaking(self) -> bool:
        return self._segment_start is not None

    @property
    def open_segment(self) -> bool:
        """Agent audio has arrived and the segment is not flushed yet (more may come)."""
        return self._segment_start is not None and self._finish_task is None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        now = self._clock()
        if self._segment_start is None:
            self._cancel_finish()
            self._segment_start = now
            self._segment_s = 0.0
            self._playout_end = now
            self.segment_starts.append(now)
            self.on_playback_started(created_at=now)
        at = max(self._playout_end, now)
        if self._recorder is not None:
            self._recorder.add_agent(frame, at=at)
        self._playout_end = at + frame.duration
        self._segment_s += frame.duration

    def flush(self) -> None:
        super().flush()
        if self._segment_start is None:
            return
        self._cancel_finish()
        self._finish_task = asyncio.create_task(self._finish_when_played())

    async def _finish_when_played(self) -> None:
        await asyncio.sleep(max(0.0, self._playout_end - self._clock()))
        played = self._segment_s
        self._segment_start = None
        self.on_playback_finished(playback_position=played, interrupted=False)

    def clear_buffer(self) -> None:
        if self._segment_start is None:
            return
        self._cancel_finish()
        now = self._clock()
        played = max(0.0, self._segment_s - max(0.0, self._playout_end - now))
        if self._recorder is not None:
            self._recorder.truncate_agent(at=now)
        self._playout_end = now
        self._segment_start = None
        self.on_playback_finished(playback_position=played, interrupted=True)

    def _cancel_finish(self) -> None:
        if self._finish_task is not None and not self._finish_task.done():
            self._finish_task.cancel()
        self._finish_task = None


class SimulatedCaller(CallTransport):
    """Speaks a scenario's lines, waits for (or interrupts) the agent, then hangs up."""

    direction = CallDirection.SIMULATED

    def __init__(
        self,
        scenario: Scenario,
        voice: CallerVoice | tts.TTS[Any],
        *,
        recorder: ConversationRecorder | None = None,
        clock: Callable[[], float] = time.time,
        direction: CallDirection = CallDirection.SIMULATED,
        caller_masked: str = "",
    ) -> None:
        self.scenario = scenario
        self.direction = direction
        self.caller_masked = caller_masked
        self._voice = voice
        self._clock = clock
        self.recorder = recorder
        self._input = _CallerAudioInput(recorder, clock)
        self._output = PhoneAudioOutput(recorder, clock)
        self._lines: list[list[bytes]] = []
        self._marks: list[tuple[float, str]] = []
        self._script: asyncio.Task[EndReason] | None = None
        self._transferred = asyncio.Event()  # the agent handed the caller over
        self.unanswered: list[int] = []
        self.transfers: list[str] = []  # E.164 numbers the agent transferred the caller to
        self.dtmf_sent: list[str] = []  # DTMF digit strings the agent pressed, in order

    @property
    def audio_input(self) -> AudioInput:
        return self._input

    @property
    def audio_output(self) -> AudioOutput:
        return self._output

    async def prepare(self) -> None:
        self._lines = [await self._speech_frames(line.say) for line in self.scenario.turns]

    async def connect(self) -> None:
        if not self._lines:
            await self.prepare()
        if self.recorder is not None:
            self.recorder.start(at=self._clock())
        self._script = asyncio.create_task(self._run_script(), name="simulated-caller-script")

    async def next_caller_pcm(self) -> bytes:
        """The caller's next 20 ms (PCM16, 16 kHz) when it is due, for a line that carries it
        to a call in another process (``voice_ai.pipeline.line``)."""
        return await self._input.next_pcm()

    @property
    def marks_version(self) -> tuple[int, int]:
        """Changes whenever ``speech_marks()`` may have: lines spoken, agent replies heard."""
        return len(self._marks), len(self._output.segment_starts)

    async def _speech_frames(self, text: str) -> list[bytes]:
        voice = self._voice
        if isinstance(voice, tts.TTS):
            async with voice.synthesize(text) as stream:
                pcm = pcm_of([event.frame async for event in stream])
        else:
            pcm = b"".join([chunk async for chunk in voice.synthesize(text)])
        pcm = resample_pcm(pcm, voice.sample_rate, CALLER_SAMPLE_RATE)
        frame_ms = round(FRAME_S * 1000)
        return [pcm_of([f]) for f in slice_frames(pcm, CALLER_SAMPLE_RATE, frame_ms=frame_ms)]

    async def _wait_for(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = self._clock() + timeout_s
        while not condition():
            if self._clock() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)
        return True

    def _agent_started_after(self, t: float) -> bool:
        return any(s >= t for s in self._output.segment_starts)

    async def _await_reply(self, after: float, index: int, *, until_done: bool) -> None:
        timeout = self.scenario.reply_timeout_s
        if not await self._wait_for(lambda: self._agent_started_after(after), timeout):
            if index >= 0:
                self.unanswered.append(index)
            return
        if until_done:
            await self._wait_for(lambda: not self._output.speaking, timeout)

    async def _run_script(self) -> EndReason:
        ended = self._clock()
        if self.scenario.wait_for_greeting:
            await self._await_reply(0.0, -1, until_done=True)
        for i, line in enumerate(self.scenario.turns):
            if i > 0:
                barge = line.barge_in_after_s is not None
                await self._await_reply(ended, i - 1, until_done=not barge)
            await asyncio.sleep(line.barge_in_after_s or line.pause_before_s)
            self._input.say(self._lines[i])
            await self._wait_for(lambda: self._input.utterance_ended_at is not None, 120.0)
            ended = self._input.utterance_ended_at or self._clock()
            self._marks.append((ended, line.say))
        await self._await_reply(ended, len(self.scenario.turns) - 1, until_done=True)
        await asyncio.sleep(0.3)
        return EndReason.CALLER_HANGUP

    async def _wait_ended(self) -> EndReason:
        assert self._script is not None, "connect() first"
        transferred = asyncio.ensure_future(self._transferred.wait())
        try:
            await asyncio.wait({self._script, transferred}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            transferred.cancel()
        if self._transferred.is_set():
            return EndReason.TRANSFERRED
        if self._script.cancelled():  # hangup() before the script was done
            return EndReason.AGENT_HANGUP
        return self._script.result()

    async def hangup(self) -> None:
        if self._script is not None and not self._script.done():
            self._script.cancel()
        self._input.close()

    # --- actions: recorded, so tests and the agent eval can see what the agent did -------------
    async def _transfer(self, to_e164: str) -> None:
        """The simulated caller is handed over: recorded, and the call ends as transferred."""
        self.transfers.append(to_e164)
        self._transferred.set()

    async def _send_dtmf(self, digits: str) -> None:
        self.dtmf_sent.append(digits)

    def speech_marks(self) -> list[CallerSpeechMark]:
        marks = []
        starts = self._output.segment_starts
        for ended, text in self._marks:
            first = next((s for s in starts if s >= ended), None)
            marks.append(CallerSpeechMark(ended_speaking_at=ended, text=text,
                                          agent_audio_at=first))
        return marks
