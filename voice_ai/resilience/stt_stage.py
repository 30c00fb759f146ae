"""A call's speech recognition: the configured provider, its cluster-wide breaker, a fallback.

One ``stream()`` lives for the whole call (livekit's STT node). Inside it, a *leg* does the
recognizing: Deepgram live (one WebSocket for the call, interim results, its endpointing), or
whisper segmented by the VAD (``SegmentedRecognition``). Each caller turn on the cloud
provider is one breaker request:

- at the start of the stream the board is asked (``acquire``) whether the first turn may go to
  the provider. Refused because the provider is down (open, quota), the call starts on the
  fallback; throttled (other calls' requests are still to show whether it is up: a burst of
  calls), no leg is opened yet: the audio is kept, and the board is asked again when the
  caller first speaks, by when those requests have answered;
- when the caller starts a later turn (the first voiced frame after a final), the board is
  asked whether this turn may go to the provider; refused, the turn goes to the fallback with
  its audio replayed. The audio goes on to the provider while the board answers;
- the turn's first transcript (interim or final) reports success and frees the slot, so a
  burst of calls holds slots for a moment, not for whole turns; a failed or stalled stream
  (speech sent, nothing back for ``stall_timeout_s``) reports a failure (counted even when
  the turn's slot is already free) and the turn finishes on the fallback: the audio since the
  last final is replayed into it, so the caller's words are not lost;
- on the fallback, after each final the board is asked again; once the breaker lets a turn
  through (half-open probe, or closed), the next turn returns to the provider on a new
  connection (a dropped WebSocket reconnects this way, without losing the turn).

With ``preflight_silence_s`` a VAD-segmented leg (whisper) sends livekit an early
PREFLIGHT_TRANSCRIPT so the LLM can start before the final (``SegmentedRecognition``); livekit
keeps the early reply only if the final transcript is the same text. Deepgram's latest interim
was tried as the same lever and measured: no change in latency (its interims never carry the
whole utterance, so livekit discarded every early reply), only cancelled LLM requests; it is
not used (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import APIConnectOptions, APITimeoutError, stt, utils, vad
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from voice_ai.audio import frame_rms
from voice_ai.providers.segmenter import SegmentedRecognition
from voice_ai.resilience.breaker import Admission
from voice_ai.resilience.gate import Outcome, ProviderBoard, report_soon
from voice_ai.resilience.served import SERVED, Served, ServedEvent
from voice_ai.resilience.stt_legs import Leg, StreamLeg

__all__ = ["SttPolicy", "StageSTT"]

logger = logging.getLogger("voice_ai.fallback")
NO_RETRY = APIConnectOptions(max_retry=0)
_END = object()


@dataclass(frozen=True)
class SttPolicy:
    stall_timeout_s: float = 2.0
    preflight_silence_s: float | None = None
    voiced_rms: float = 500.0
    """Frames louder than this (int16 RMS) count as speech for stall and pause detection."""
    replay_limit_s: float = 30.0
    """At most this much audio since the last final is kept for a replay."""
    clock: Callable[[], float] = time.monotonic


class StageSTT(stt.STT[ServedEvent]):
    def __init__(self, primary: stt.STT[Any], *, name: str, vad: vad.VAD,
                 fallback: stt.STT[Any] | None = None, fallback_name: str = "",
                 board: ProviderBoard | None = None, policy: SttPolicy | None = None) -> None:
        super().__init__(capabilities=stt.STTCapabilities(
            streaming=True, interim_results=primary.capabilities.interim_results))
        if fallback is not None and board is None:
            raise ValueError("a fallback needs the breaker board that decides when to use it")
        self.primary, self.fallback = primary, fallback
        self.name, self.fallback_name = name, fallback_name
        self.vad = vad
        self.board = board
        self.policy = policy or SttPolicy()
        for inner in (primary, fallback):
            if inner is not None:
                inner.on("metrics_collected", self._forward_metrics)

    @property
    def provider(self) -> str:
        return self.name

    def _forward_metrics(self, *args: Any) -> None:
        self.emit("metrics_collected", *args)

    async def _recognize_impl(self, buffer: utils.AudioBuffer, *,
                              language: NotGivenOr[str] = NOT_GIVEN,
                              conn_options: APIConnectOptions) -> stt.SpeechEvent:
        raise NotImplementedError("a call's STT is a stream; use stream()")

    def stream(self, *, language: NotGivenOr[str] = NOT_GIVEN,
               conn_options: APIConnectOptions = NO_RETRY) -> stt.RecognizeStream:
        return _StageStream(self, language=language if isinstance(language, str) else "en",
                            conn_options=conn_options)

    def open_leg(self, primary: bool, language: str) -> Leg:
        recognizer = self.primary if primary else self.fallback
        assert recognizer is not None
        if recognizer.capabilities.streaming:
            return StreamLeg(recognizer.stream(language=language, conn_options=NO_RETRY))
        return SegmentedRecognition(recognizer, self.vad, language=language,
                                    conn_options=NO_RETRY,
                                    preflight_silence_s=self.policy.preflight_silence_s)


class _StageStream(stt.RecognizeStream):
    _stt: StageSTT

    def __init__(self, stage: StageSTT, *, language: str,
                 conn_options: APIConnectOptions) -> None:
        super().__init__(stt=stage, conn_options=conn_options)
        self._language = language
        self._lease = utils.shortuuid("stt_")
        self._queue: asyncio.Queue[tuple[Leg, Any]] = asyncio.Queue()
        self._leg: Leg | None = None
        self._on_primary = False
        self._admitted = False  # a breaker request (this turn) is outstanding
        self._held_quota = False
        self._audio: deque[rtc.AudioFrame] = deque()  # since the last final, for a replay
        self._audio_s = 0.0
        self._input_ended = False
        self._voiced_at: float | None = None  # speech sent to the provider, nothing back yet
        self._quiet_since: float | None = None
        self._speech_end_at: float | None = None  # wall time the caller's last speech ended
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deciding: asyncio.Task[None] | None = None
        self._turn_pending = False  # on the provider: the next voiced frame asks the board
        self._needs_person = False  # a permanent error (401...): not retried in this call

    # --- main --------------------------------------------------------------------------------
    async def _run(self) -> None:
        stage = self._stt
        try:
            admission = await self._admit() if stage.board else Admission.ADMITTED
            if admission is Admission.THROTTLED:  # asked again when the caller speaks
                self._turn_pending = True
            else:
                self._switch(primary=admission.allowed, replay=False)
            self._spawn(self._forward_input())
            if stage.board is not None:
                self._spawn(self._watch_stall())
            while True:
                leg, item = await self._queue.get()
                if leg is not self._leg:
                    continue  # a leg we already left
                if item is _END:
                    if self._input_ended:
                        return
                    item = ConnectionError(f"{self._leg_name()} stream ended early")
                if isinstance(item, BaseException):
                    await self._failed(item)
                else:
                    await self._on_event(item)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._leg is not None:
                await self._leg.aclose()
            await self._settle()

    async def _settle(self) -> None:
        board = self._stt.board
        if board is None:
            return
        if self._admitted:
            self._admitted = False
            await board.report(self._stt.name, None)
        if self._held_quota:
            self._held_quota = False
            await board.release(self._stt.name, self._lease)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- legs --------------------------------------------------------------------------------
    def _leg_name(self) -> str:
        return self._stt.name if self._on_primary else self._stt.fallback_name

    def _switch(self, *, primary: bool, replay: bool) -> None:
        old = self._leg
        leg = self._stt.open_leg(primary, self._language)
        self._leg, self._on_primary = leg, primary
        self._voiced_at = None
        self._spawn(self._read(leg))
        if replay:
            for frame in self._audio:
                leg.push_frame(frame)
        if self._input_ended:
            leg.end_input()
        if old is not None:
            self._spawn(old.aclose())

    async def _read(self, leg: Leg) -> None:
        try:
            async for ev in leg.events():
                self._queue.put_nowait((leg, ev))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._queue.put_nowait((leg, e))
        else:
            self._queue.put_nowait((leg, _END))

    async def _forward_input(self) -> None:
        clock = self._stt.policy.clock
        async for item in self._input_ch:
            leg = self._leg
            if isinstance(item, rtc.AudioFrame):
                self._keep(item)
                voiced = frame_rms(item) >= self._stt.policy.voiced_rms
                if voiced:
                    self._quiet_since = None
                    if self._on_primary and self._voiced_at is None:
                        self._voiced_at = clock()
                    if self._turn_pending and (self._on_primary or leg is None):
                        self._turn_pending = False
                        self._decide()
                elif self._quiet_since is None:
                    self._quiet_since = clock()
                    self._speech_end_at = time.time()
                if leg is not None:  # none yet: kept for the leg the board's answer opens
                    leg.push_frame(item)
            elif leg is not None:
                leg.flush()
        self._input_ended = True
        if self._leg is not None:
            self._leg.end_input()

    def _keep(self, frame: rtc.AudioFrame) -> None:
        self._audio.append(frame)
        self._audio_s += frame.duration
        while self._audio_s > self._stt.policy.replay_limit_s and self._audio:
            self._audio_s -= self._audio.popleft().duration

    # --- events ------------------------------------------------------------------------------
    async def _on_event(self, ev: stt.SpeechEvent) -> None:
        if self._on_primary:
            self._voiced_at = None  # the provider is answering
        text = ev.alternatives[0].text if ev.alternatives else ""
        if (ev.type == stt.SpeechEventType.END_OF_SPEECH and ev.speech_end_time is None
                and self._speech_end_at is not None):
            # the provider's end of speech comes after its endpointing silence: anchor the
            # turn's endpointing delay at when the caller actually stopped, as the VAD would
            ev = dataclasses.replace(ev, speech_end_time=self._speech_end_at)
        self._event_ch.send_nowait(ev)
        board = self._stt.board
        if self._on_primary and self._admitted and text and board is not None:
            self._admitted = False  # the provider answers this turn: its slot is free
            report_soon(board, self._stt.name, Outcome.success())
        if ev.type != stt.SpeechEventType.FINAL_TRANSCRIPT or not text:
            return
        self._audio.clear()
        self._audio_s = 0.0
        self._stt.emit(SERVED, Served("stt", self._leg_name(), fallback=not self._on_primary))
        if board is None:
            return
        if self._on_primary:
            self._turn_pending = True  # asked when the caller speaks again
        else:
            self._decide()  # on the fallback: may the next turn return to the provider?

    def _decide(self) -> None:
        if self._deciding is None or self._deciding.done():
            self._deciding = self._spawn(self._decide_next_turn())

    async def _decide_next_turn(self) -> None:
        """May this turn (on the provider) or the next one (on the fallback) use the provider?"""
        if self._needs_person:
            return
        leg = self._leg
        if leg is not None and self._on_primary and self._admitted:
            return  # a slot is held already (taken after the last turn's first transcript)
        allowed = (await self._admit()).allowed
        if leg is None:  # the call's first turn, throttled at the start: a leg now
            self._switch(primary=allowed, replay=True)
            return
        if self._leg is not leg:  # the turn failed over while the board answered
            if self._admitted:
                self._admitted = False
                await self._report(None)
            return
        if allowed and not self._on_primary:
            logger.info("provider back, next turn on it", extra={"stage": "stt",
                                                                 "provider": self._stt.name})
            self._switch(primary=True, replay=True)
        elif not allowed and self._on_primary:
            logger.warning("breaker refused the provider, next turn on the fallback",
                           extra={"stage": "stt", "provider": self._stt.name})
            self._switch(primary=False, replay=True)

    async def _report(self, outcome: Outcome | None) -> None:
        board = self._stt.board
        assert board is not None
        await board.report(self._stt.name, outcome)

    async def _admit(self) -> Admission:
        board = self._stt.board
        assert board is not None
        admission = await board.acquire(self._stt.name, self._lease)
        if admission.allowed:
            self._admitted = True
            self._held_quota = True
        elif self._held_quota:
            self._held_quota = False
            await board.release(self._stt.name, self._lease)
        return admission

    async def _failed(self, error: BaseException) -> None:
        stage = self._stt
        if not self._on_primary or stage.fallback is None or stage.board is None:
            raise error
        logger.warning("provider failed, turn finishes on the fallback",
                       extra={"stage": "stt", "provider": stage.name,
                              "fallback": stage.fallback_name, "error": type(error).__name__})
        outcome = Outcome.failure(error)
        self._needs_person = not outcome.transient
        if self._admitted:
            self._admitted = False
            await stage.board.report(stage.name, outcome)
        else:  # the turn's slot is free already (or not taken yet): still counted
            await stage.board.report(stage.name, outcome.later())
        self._turn_pending = False
        self._switch(primary=False, replay=True)

    # --- watchdogs ---------------------------------------------------------------------------
    async def _watch_stall(self) -> None:
        policy = self._stt.policy
        while True:
            await asyncio.sleep(min(0.05, policy.stall_timeout_s / 4))
            since, leg = self._voiced_at, self._leg
            if self._on_primary and since is not None and leg is not None \
                    and policy.clock() - since >= policy.stall_timeout_s:
                self._voiced_at = None
                self._queue.put_nowait((leg, APITimeoutError(
                    f"{self._stt.name}: no transcript {policy.stall_timeout_s:g}s after speech")))
