"""The zombie-call watchdog: ends calls with no audio either way, or that run too long.

Policy tests run on an injected clock (no sleeping); the wiring tests run a real
``AgentSession``'s audio ports for a few tens of milliseconds."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.voice.io import AudioInput, AudioOutput, AudioOutputCapabilities

from voice_ai.audio import frame_from_pcm, rms_dbfs
from voice_ai.pipeline.transport import CallTransport
from voice_ai.pipeline.watchdog import CALLER_SOUND_DBFS, CallWatchdog, WatchdogLimits
from voice_ai.records import CallOutcome, EndReason

pytestmark = pytest.mark.unit

RATE = 16_000
FRAME = 320  # 20 ms


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _noise(dbfs: float, samples: int = FRAME, seed: int = 7) -> bytes:
    sigma = 32768 * 10 ** (dbfs / 20)
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, sigma, samples), -32768, 32767).astype(np.int16).tobytes()


def _dog(silence_s: float = 60.0, max_s: float = 600.0) -> tuple[CallWatchdog, FakeClock]:
    clock = FakeClock()
    dog = CallWatchdog(WatchdogLimits(silence_s, max_s), clock=clock, sleep=clock.sleep)
    dog.start()
    return dog, clock


# --- the policy --------------------------------------------------------------------------
def test_quiet_s_counts_from_the_last_sound_either_way() -> None:
    # what a drain's hand-over waits on: the caller's breath of speech before the VAD calls it
    # speech, or the agent's audio still playing out, is not a quiet line
    dog, clock = _dog()
    clock.now += 2.0
    assert dog.quiet_s() == 2.0
    dog.caller_audio(_noise(-30))
    clock.now += 0.25
    assert dog.quiet_s() == 0.25
    dog.caller_audio(bytes(FRAME * 2))  # digital silence is quiet
    dog.agent_playing(True)
    clock.now += 5.0
    assert dog.quiet_s() == 0.0
    dog.agent_playing(False)
    clock.now += 0.5
    assert dog.quiet_s() == 0.5


def test_a_silent_line_is_a_zombie_after_the_timeout() -> None:
    dog, clock = _dog(silence_s=60)
    clock.now += 59.9
    dog.caller_audio(bytes(FRAME * 2))  # digital silence: a dead leg
    assert dog.verdict() is None
    clock.now += 0.1
    assert dog.verdict() is EndReason.SILENCE_TIMEOUT
    assert EndReason.SILENCE_TIMEOUT.outcome is CallOutcome.FAILED


def test_caller_speech_restarts_the_silence_clock() -> None:
    dog, clock = _dog(silence_s=60)
    clock.now += 50
    dog.caller_audio(_noise(-25))  # speech level
    clock.now += 59
    assert dog.verdict() is None
    clock.now += 1
    assert dog.verdict() is EndReason.SILENCE_TIMEOUT


def test_a_caller_breathing_on_the_line_is_not_a_zombie_but_comfort_noise_is() -> None:
    breathing, hiss = _noise(-45, RATE * 2), _noise(-70, RATE * 2)
    assert rms_dbfs(breathing) > CALLER_SOUND_DBFS > rms_dbfs(hiss)
    alive, clock = _dog(silence_s=60)
    for _ in range(40):  # two minutes: 1 s of breath every 3 s, otherwise silence
        clock.now += 2.0
        alive.caller_audio(bytes(FRAME * 2))
        clock.now += 1.0
        alive.caller_audio(breathing[: FRAME * 2])
        assert alive.verdict() is None
    dead, clock = _dog(silence_s=60)
    for _ in range(60):
        clock.now += 1.0
        dead.caller_audio(hiss[: FRAME * 2])
    assert dead.verdict() is EndReason.SILENCE_TIMEOUT


def test_caller_frames_count_as_sound_at_the_same_level_as_caller_audio() -> None:
    breathing, hiss = _noise(-45), _noise(-70)
    for pcm, verdict in ((breathing, None), (hiss, EndReason.SILENCE_TIMEOUT)):
        dog, clock = _dog(silence_s=60)
        clock.now += 59
        dog.caller_frame(frame_from_pcm(pcm, RATE))
        clock.now += 1
        assert dog.verdict() is verdict


def test_agent_audio_keeps_the_call_alive_and_the_clock_starts_when_it_stops() -> None:
    dog, clock = _dog(silence_s=10)
    dog.agent_playing(True)
    clock.now += 25  # a long answer with the caller quietly listening
    assert dog.verdict() is None
    dog.agent_playing(False)
    clock.now += 9.9
    assert dog.verdict() is None
    clock.now += 0.1
    assert dog.verdict() is EndReason.SILENCE_TIMEOUT


def test_a_call_longer_than_the_maximum_ends_even_while_people_talk() -> None:
    dog, clock = _dog(silence_s=10, max_s=30)
    for _ in range(29):
        clock.now += 1
        dog.caller_audio(_noise(-20))
        assert dog.verdict() is None
    clock.now += 1
    assert dog.verdict() is EndReason.MAX_DURATION
    assert EndReason.MAX_DURATION.outcome is CallOutcome.FAILED


async def test_watch_sleeps_until_a_deadline_instead_of_polling() -> None:
    dog, clock = _dog(silence_s=60, max_s=600)
    assert await dog.watch() is EndReason.SILENCE_TIMEOUT
    assert clock.sleeps == [pytest.approx(60.0)]
    dog2, clock2 = _dog(silence_s=60, max_s=600)
    dog2.agent_playing(True)  # plays for ever (a stuck sink): only the maximum ends it
    assert await dog2.watch() is EndReason.MAX_DURATION
    assert len(clock2.sleeps) == 10 and sum(clock2.sleeps) == pytest.approx(600.0)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="watchdog timeouts must be positive"):
        WatchdogLimits(0, 600)


# --- wired into a call -------------------------------------------------------------------
class _Mic(AudioInput):
    """A caller whose line carries ``pcm`` frames, then nothing at all (a dead leg)."""

    def __init__(self, frames: list[bytes]) -> None:
        super().__init__(label="test-mic")
        self._frames = list(frames)

    async def __anext__(self) -> rtc.AudioFrame:
        if not self._frames:
            await asyncio.Event().wait()
        return frame_from_pcm(self._frames.pop(0), RATE)


class _Speaker(AudioOutput):
    def __init__(self) -> None:
        super().__init__(label="test-speaker", capabilities=AudioOutputCapabilities(pause=False))

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)

    def flush(self) -> None:
        super().flush()

    def clear_buffer(self) -> None:
        pass


class _LineThatNeverHangsUp(CallTransport):
    def __init__(self, frames: list[bytes]) -> None:
        self._mic, self._speaker = _Mic(frames), _Speaker()

    @property
    def audio_input(self) -> AudioInput:
        return self._mic

    @property
    def audio_output(self) -> AudioOutput:
        return self._speaker

    async def connect(self) -> None:
        pass

    async def _wait_ended(self) -> EndReason:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def hangup(self) -> None:
        pass


async def test_a_transport_whose_line_went_dead_ends_with_the_watchdogs_reason() -> None:
    transport = _LineThatNeverHangsUp([_noise(-25)] * 3)
    transport.watchdog = CallWatchdog(WatchdogLimits(silence_timeout_s=0.05, max_duration_s=5))
    session: AgentSession[None] = AgentSession()
    await transport.attach(session)
    assert session.output.audio is transport.audio_output
    tap = session.input.audio
    assert tap is not None and tap.source is transport.audio_input
    heard = [await anext(tap) for _ in range(3)]  # the session reads through the tap
    assert all(f.samples_per_channel == FRAME for f in heard)
    reason = await asyncio.wait_for(transport.wait_ended(), 2)
    assert reason is EndReason.SILENCE_TIMEOUT
    assert "CALL_SILENCE_TIMEOUT_S" in transport.end_detail
    await transport.aclose()


async def test_agent_playback_on_the_session_output_holds_the_watchdog_off() -> None:
    transport = _LineThatNeverHangsUp([])
    transport.watchdog = CallWatchdog(WatchdogLimits(silence_timeout_s=0.05, max_duration_s=5))
    session: AgentSession[None] = AgentSession()
    await transport.attach(session)
    speaker = transport.audio_output
    await speaker.capture_frame(frame_from_pcm(_noise(-20), RATE))
    speaker.on_playback_started(created_at=0.0)
    ending = asyncio.ensure_future(transport.wait_ended())
    await asyncio.sleep(0.15)  # three timeouts of agent speech
    assert not ending.done()
    speaker.flush()
    speaker.on_playback_finished(playback_position=0.02, interrupted=False)
    assert await asyncio.wait_for(ending, 2) is EndReason.SILENCE_TIMEOUT
    await transport.aclose()


async def test_the_transports_own_end_wins_when_it_comes_first() -> None:
    class _HangsUp(_LineThatNeverHangsUp):
        async def _wait_ended(self) -> EndReason:
            return EndReason.CALLER_HANGUP

    transport = _HangsUp([])
    transport.watchdog = CallWatchdog(WatchdogLimits(silence_timeout_s=5, max_duration_s=5))
    assert await transport.wait_ended() is EndReason.CALLER_HANGUP
    assert transport.end_detail == ""
