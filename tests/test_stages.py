"""The stages' policies without Ray: breaker gate, fallback, failover mid-stream, recovery,
per-account quota, which provider served. In-memory board, scripted providers, an injected
clock; the whole module runs in well under a few seconds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from livekit import rtc
from livekit.agents import APIStatusError, llm, stt

from tests.fakes.providers import (
    EnergyVAD,
    LiveSTT,
    ScriptedLLM,
    ScriptedSTT,
    ToneTTS,
    utterance,
)
from voice_ai.resilience.board import BreakerBoard
from voice_ai.resilience.breaker import Admission, BreakerConfig, BreakerState
from voice_ai.resilience.gate import BoardService, BoundedBoard, Outcome
from voice_ai.resilience.llm_stage import StageLLM
from voice_ai.resilience.quota import QuotaBoard
from voice_ai.resilience.served import Served
from voice_ai.resilience.stt_legs import ENDPOINT_WAIT_S, StreamLeg
from voice_ai.resilience.stt_stage import StageSTT, SttPolicy
from voice_ai.resilience.tts_stage import StageTTS

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def board(clock: Clock, *, min_requests: int = 2, recovery_s: float = 10.0,
          quota: dict[str, int] | None = None) -> BoardService:
    config = BreakerConfig(failure_threshold=0.5, window_s=60.0, min_requests=min_requests,
                           recovery_timeout_s=recovery_s, half_open_probes=1, lease_s=30.0)
    return BoardService(BreakerBoard(config, clock), QuotaBoard(quota or {}, clock=clock),
                        throttle_wait_s=0.05)


def served_log(stage: Any) -> list[Served]:
    log: list[Served] = []
    stage.on("served", log.append)
    return log


async def open_breaker(b: BoardService, provider: str, failures: int = 2) -> None:
    """Other calls' requests to ``provider`` failed (reported through the same port)."""
    for _ in range(failures):
        await b.report(provider, Outcome(ok=False, error="HTTP 500", transient=True))
    assert b.breakers.snapshot(provider).state is BreakerState.OPEN


class SttCall:
    """One call's STT stream: push caller turns, read the finals as the session would."""

    def __init__(self, stage: StageSTT) -> None:
        self.stream = stage.stream()
        self.finals: asyncio.Queue[str] = asyncio.Queue()
        self.events: list[stt.SpeechEvent] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for ev in self.stream:
            self.events.append(ev)
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                self.finals.put_nowait(ev.alternatives[0].text)

    async def turn(self, frames: list[rtc.AudioFrame]) -> str:
        for f in frames:
            self.stream.push_frame(f)
            await asyncio.sleep(0)
        return await asyncio.wait_for(self.finals.get(), 2.0)

    async def close(self) -> None:
        self.stream.end_input()
        await asyncio.wait_for(self._reader, 2.0)
        await self.stream.aclose()


def stt_stage(primary: stt.STT[Any], fallback: stt.STT[Any], b: BoardService,
              **policy: Any) -> StageSTT:
    return StageSTT(primary, name="deepgram", vad=EnergyVAD(), fallback=fallback,
                    fallback_name="whisper", board=b, policy=SttPolicy(**policy))


# --- STT ----------------------------------------------------------------------------------
async def test_stt_turns_move_to_whisper_when_the_breaker_opens_and_back_when_it_closes() -> None:
    clock = Clock()
    b = board(clock)
    live = LiveSTT(["one", "two", "three", "four"])
    whisper = ScriptedSTT(["w-two", "w-three"])
    stage = stt_stage(live, whisper, b)
    served = served_log(stage)
    call = SttCall(stage)

    assert await call.turn(utterance()) == "one"
    await open_breaker(b, "deepgram")  # other calls saw Deepgram fail: cluster-wide
    await asyncio.sleep(0.01)
    # the next turn asks the board as the caller starts speaking: open -> whisper, with the
    # turn's audio replayed (Deepgram had begun hearing it: its "two" is never used)
    assert await call.turn(utterance()) == "w-two"
    clock.now += 11  # recovery timeout: half-open, the next admission is a probe
    assert await call.turn(utterance()) == "w-three"  # its final asks: the probe is let through
    await asyncio.sleep(0.01)
    assert await call.turn(utterance()) == "three"  # back on Deepgram (a new connection)
    await call.close()

    assert [(s.provider, s.fallback) for s in served] == [
        ("deepgram", False), ("whisper", True), ("whisper", True), ("deepgram", False)]
    assert live.streams == 2
    assert b.breakers.snapshot("deepgram").state is BreakerState.CLOSED  # the probe succeeded


async def test_stt_burst_of_calls_holds_no_slots_between_turns() -> None:
    """Four calls at once with BREAKER_MIN_REQUESTS=2: two are admitted at the start, two are
    throttled and wait, without a leg, until their callers speak; a turn's first transcript
    frees its slot, so they are let through then and no call goes to whisper (they did: a slot
    was held from one final to the next, and a throttled start went to the fallback)."""
    b = board(Clock(), min_requests=2)
    live = LiveSTT(["hello"])
    whisper = ScriptedSTT(["w"])
    stage = stt_stage(live, whisper, b)
    served = served_log(stage)
    calls = [SttCall(stage) for _ in range(4)]
    for _ in range(2):
        assert await asyncio.gather(*(c.turn(utterance()) for c in calls)) == ["hello"] * 4
    await asyncio.gather(*(c.close() for c in calls))
    assert {s.provider for s in served} == {"deepgram"} and len(served) == 8
    snap = b.breakers.snapshot("deepgram")
    assert snap.in_flight == 0 and snap.total_successes == 8


class SlowBoard:
    """The cluster's board a round trip away: acquire ``i`` takes ``delays_s[i]`` (0 after)."""

    def __init__(self, inner: BoardService, delays_s: list[float]) -> None:
        self.inner, self.delays_s = inner, list(delays_s)

    async def acquire(self, provider: str, lease: str) -> Admission:
        await asyncio.sleep(self.delays_s.pop(0) if self.delays_s else 0.0)
        return await self.inner.acquire(provider, lease)

    async def report(self, provider: str, outcome: Outcome | None) -> None:
        await self.inner.report(provider, outcome)

    async def release(self, provider: str, lease: str) -> None:
        await self.inner.release(provider, lease)


async def test_stt_slot_taken_after_the_turns_transcript_is_not_leaked() -> None:
    """The board answers turn 2's admission only after Deepgram has transcribed turn 2 (a busy
    registry), then answers turn 3's at once: turn 3 must not take a second slot over the one
    still held, or one slot stays in flight (until its lease ends) after the call."""
    inner = board(Clock(), min_requests=5)
    slow = SlowBoard(inner, [0.0, 0.3])  # the stream's start, then turn 2
    stage = stt_stage(LiveSTT(["one", "two", "three"]), ScriptedSTT(["w"]), slow)
    call = SttCall(stage)
    assert [await call.turn(utterance()) for _ in range(2)] == ["one", "two"]
    await asyncio.sleep(0.4)  # turn 2's admission comes back after its final
    assert await call.turn(utterance()) == "three"
    await call.close()
    await asyncio.sleep(0.01)  # first-transcript reports travel in the background
    snap = inner.breakers.snapshot("deepgram")
    assert snap.in_flight == 0 and snap.total_failures == 0


async def test_stt_stream_that_drops_mid_turn_finishes_the_turn_on_whisper() -> None:
    clock = Clock()
    b = board(clock, min_requests=5)
    live = LiveSTT(["never"], mode="drop", drop_after=20)  # drops 0.4 s into the speech
    whisper = ScriptedSTT(["all the words"])
    stage = stt_stage(live, whisper, b)
    served = served_log(stage)
    call = SttCall(stage)

    assert await call.turn(utterance(speech_s=0.8)) == "all the words"
    await call.close()
    # the whole utterance reached whisper: the audio before the drop was replayed into it
    assert whisper.heard_s and whisper.heard_s[0] >= 0.78
    snap = b.breakers.snapshot("deepgram")
    assert snap.total_failures == 1 and "drop" in (snap.last_error or "")
    assert served == [Served("stt", "whisper", True)]


async def test_stt_stream_that_hangs_is_a_timeout_and_the_turn_is_answered() -> None:
    b = board(Clock(), min_requests=5)
    stage = stt_stage(LiveSTT(mode="hang"), ScriptedSTT(["heard by whisper"]), b,
                      stall_timeout_s=0.15)
    call = SttCall(stage)
    for f in utterance(speech_s=0.4, silence_s=0.0):
        call.stream.push_frame(f)
    await asyncio.sleep(0.25)  # the provider says nothing for longer than the stall timeout
    assert await call.turn(utterance(speech_s=0.0, silence_s=0.6)) == "heard by whisper"
    await call.close()
    assert "TimeoutError" in (b.breakers.snapshot("deepgram").last_error or "")


def _kinds(events: list[stt.SpeechEvent]) -> list[str]:
    keep = {stt.SpeechEventType.FINAL_TRANSCRIPT, stt.SpeechEventType.END_OF_SPEECH}
    return [ev.type.name for ev in events if ev.type in keep]


async def test_stt_end_of_speech_comes_before_the_final_it_arrived_with() -> None:
    """livekit's "stt" turn detection starts the preemptive reply on a final only once the
    end of speech is known: Deepgram's plugin sends them the other way round."""
    stage = stt_stage(LiveSTT(["one", "two"]), ScriptedSTT(), board(Clock(), min_requests=5))
    call = SttCall(stage)
    assert await call.turn(utterance()) == "one"
    assert await call.turn(utterance()) == "two"
    await call.close()
    assert _kinds(call.events) == ["END_OF_SPEECH", "FINAL_TRANSCRIPT"] * 2


class _TimedEvents:
    """A provider stream that sends ``(delay_s, event)`` in order, then ends."""

    def __init__(self, script: list[tuple[float, stt.SpeechEvent]]) -> None:
        self.script = script

    async def __aiter__(self) -> Any:
        for delay_s, ev in self.script:
            await asyncio.sleep(delay_s)
            yield ev


async def test_a_final_that_no_end_of_speech_follows_is_not_held_back() -> None:
    final = stt.SpeechEvent(stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[
        stt.SpeechData(language="en", text="so", confidence=1.0)])
    end = stt.SpeechEvent(stt.SpeechEventType.END_OF_SPEECH)
    leg = StreamLeg(_TimedEvents([(0.0, final), (0.3, end), (0.0, final)]))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    start, seen = loop.time(), []
    async for ev in leg.events():
        seen.append((ev.type.name, loop.time() - start))
    # the first final waited ENDPOINT_WAIT_S for an end of speech, not the 0.3 s until it came;
    # the last final, with nothing after it, still arrived
    assert [kind for kind, _ in seen] == ["FINAL_TRANSCRIPT", "END_OF_SPEECH", "FINAL_TRANSCRIPT"]
    assert ENDPOINT_WAIT_S <= seen[0][1] < 0.2


async def test_stt_refused_at_open_and_over_quota_calls_use_whisper() -> None:
    clock = Clock()
    b = board(clock, min_requests=5, quota={"deepgram": 1})
    first = SttCall(stt_stage(LiveSTT(["first call"]), ScriptedSTT(["x"]), b))
    assert await first.turn(utterance()) == "first call"
    second = SttCall(stt_stage(LiveSTT(["y"]), ScriptedSTT(["second call"]), b))
    assert await second.turn(utterance()) == "second call"  # quota: one Deepgram stream
    await first.close()
    await second.close()
    assert b.quotas.in_use("deepgram") == 0  # both gave their slots back

    refused = SttCall(stt_stage(LiveSTT(mode="refuse"), ScriptedSTT(["fallback"]), b))
    assert await refused.turn(utterance()) == "fallback"
    await refused.close()
    # the refusal counted in the breaker (and again each time the stage retried the provider
    # after a turn, while the breaker still let it)
    assert b.breakers.snapshot("deepgram").total_failures >= 1


async def test_whisper_preflight_is_committed_when_the_caller_stays_silent() -> None:
    whisper = ScriptedSTT(["early words", "late words"])
    stage = StageSTT(whisper, name="whisper", vad=EnergyVAD(min_silence_s=0.4),
                     policy=SttPolicy(preflight_silence_s=0.1))
    call = SttCall(stage)
    assert await call.turn(utterance(speech_s=0.5, silence_s=0.6)) == "early words"
    kinds = [e.type for e in call.events]
    assert stt.SpeechEventType.PREFLIGHT_TRANSCRIPT in kinds
    assert kinds.index(stt.SpeechEventType.PREFLIGHT_TRANSCRIPT) < kinds.index(
        stt.SpeechEventType.END_OF_SPEECH)
    assert len(whisper.heard_s) == 1  # recognized once: the final reuses the early text

    # the caller pauses briefly, then goes on: the early text is discarded, the whole
    # utterance is recognized at its end
    pause = utterance(speech_s=0.4, silence_s=0.2) + utterance(speech_s=0.4, silence_s=0.6)
    assert await call.turn(pause) == "late words"
    assert whisper.heard_s[-1] >= 0.9
    await call.close()


# --- LLM ----------------------------------------------------------------------------------
async def collect(stream: llm.LLMStream) -> str:
    async with stream:
        return "".join([c.delta.content or "" async for c in stream if c.delta])


def chat(text: str = "What are your hours?") -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="user", content=text)
    return ctx


async def test_llm_open_breaker_and_failures_go_to_the_local_model() -> None:
    clock = Clock()
    b = board(clock)
    cloud = ScriptedLLM(["cloud answer"], name="openai",
                        fail=APIStatusError("boom", status_code=503, retryable=False))
    local = ScriptedLLM(["local answer"], name="local")
    stage = StageLLM(cloud, name="openai", fallback=local, fallback_name="local", board=b)
    served = served_log(stage)

    assert (await collect(stage.chat(chat_ctx=chat()))).strip() == "local answer"
    assert (await collect(stage.chat(chat_ctx=chat()))).strip() == "local answer"
    assert b.breakers.snapshot("openai").state is BreakerState.OPEN  # 2 of 2 failed
    assert (await collect(stage.chat(chat_ctx=chat()))).strip() == "local answer"
    assert len(cloud.requests) == 2  # once open, nothing more reached the provider
    assert {s.provider for s in served} == {"local"} and all(s.fallback for s in served)


async def test_llm_failure_mid_reply_is_continued_by_the_fallback() -> None:
    b = board(Clock(), min_requests=5)
    cloud = ScriptedLLM(["We are open from nine"], name="openai", fail_after_tokens=3,
                        fail=APIStatusError("reset", status_code=502, retryable=False))
    local = ScriptedLLM(["to five."], name="local")
    stage = StageLLM(cloud, name="openai", fallback=local, fallback_name="local", board=b)
    served = served_log(stage)
    text = await collect(stage.chat(chat_ctx=chat()))
    assert text.split() == ["We", "are", "open", "to", "five."]
    # the fallback knew what had been said already
    said = [i for i in local.requests[0].items if getattr(i, "role", "") == "assistant"]
    assert said and said[-1].text_content.strip() == "We are open"
    assert [s.provider for s in served] == ["openai", "local"]


async def test_llm_burst_of_long_replies_is_not_throttled_and_mid_reply_failure_counts() -> None:
    """A reply frees its breaker slot at its first chunk: with BREAKER_MIN_REQUESTS=2, four
    replies streaming at once all come from the provider (none throttled to the fallback while
    the others are still speaking); a failure after the first chunk is still counted."""
    b = board(Clock(), min_requests=2)
    cloud = ScriptedLLM(["one two three four five six"], name="openai", token_s=0.05)
    local = ScriptedLLM(["local"], name="local")
    stage = StageLLM(cloud, name="openai", fallback=local, fallback_name="local", board=b)
    served = served_log(stage)
    replies = await asyncio.gather(*(collect(stage.chat(chat_ctx=chat())) for _ in range(4)))
    assert [r.split() for r in replies] == [["one", "two", "three", "four", "five", "six"]] * 4
    assert [s.provider for s in served] == ["openai"] * 4 and local.requests == []
    snap = b.breakers.snapshot("openai")
    assert (snap.in_flight, snap.total_successes, snap.total_failures) == (0, 4, 0)

    failing = ScriptedLLM(["We are open from nine"], name="openai", fail_after_tokens=3,
                          fail=APIStatusError("reset", status_code=502, retryable=False))
    stage = StageLLM(failing, name="openai", fallback=ScriptedLLM(["to five."]),
                     fallback_name="local", board=b)
    assert (await collect(stage.chat(chat_ctx=chat()))).split()[-1] == "five."
    snap = b.breakers.snapshot("openai")
    # the reply's first chunk was a success, its failure after that counted too: no slot left
    assert (snap.in_flight, snap.total_successes, snap.total_failures) == (0, 5, 1)


class _WarmedLLM(ScriptedLLM):
    warmed = 0

    async def _prewarm_impl(self) -> None:
        self.warmed += 1


class _WarmedTTS(ToneTTS):
    warmed = 0

    def prewarm(self) -> None:
        self.warmed += 1


async def test_the_stages_pass_livekits_prewarm_on_to_the_provider() -> None:
    """livekit prewarms the session's LLM and TTS (connections opened before the first
    reply); through a stage that reached nobody, and every call's first reply paid for it."""
    primary = _WarmedLLM(["hi"], name="openai")
    stage = StageLLM(primary, name="openai", fallback=ScriptedLLM(["local"]),
                     fallback_name="local", board=board(Clock()))
    stage.prewarm()
    await asyncio.sleep(0.01)  # livekit's prewarm is a fire-and-forget task
    assert primary.warmed == 1
    voice = _WarmedTTS(name="cartesia")
    StageTTS(voice, name="cartesia", fallback=ToneTTS(name="piper"), fallback_name="piper",
             board=board(Clock())).prewarm()
    assert voice.warmed == 1


async def test_llm_cancelled_reply_reports_no_outcome() -> None:
    b = board(Clock(), min_requests=1)
    cloud = ScriptedLLM(["slow"], name="openai", first_token_s=5.0)
    stage = StageLLM(cloud, name="openai", fallback=ScriptedLLM(), fallback_name="local",
                     board=b)
    stream = stage.chat(chat_ctx=chat())
    await asyncio.sleep(0.02)
    await stream.aclose()  # barge-in / discarded preemptive generation
    snap = b.breakers.snapshot("openai")
    assert (snap.in_flight, snap.total_failures, snap.total_successes) == (0, 0, 0)
    assert b.quotas.in_use("openai") == 0


# --- TTS ----------------------------------------------------------------------------------
async def speak(stage: StageTTS, pieces: list[str]) -> tuple[bytes, list[rtc.AudioFrame]]:
    stream = stage.stream()
    for p in pieces:
        stream.push_text(p)
    stream.end_input()
    got = [ev.frame async for ev in stream]
    await stream.aclose()
    return b"".join(f.data.tobytes() for f in got), got


async def test_tts_failure_mid_reply_hands_the_rest_to_the_fallback_voice() -> None:
    b = board(Clock(), min_requests=5)
    cartesia = ToneTTS(name="cartesia", rate=24_000, fail_after_words=3,
                       fail=APIStatusError("gone", status_code=500, retryable=False))
    piper = ToneTTS(name="piper", rate=22_050)
    stage = StageTTS(cartesia, name="cartesia", fallback=piper, fallback_name="piper", board=b)
    served = served_log(stage)
    pcm, got = await speak(stage, ["One two three ", "four five six."])
    assert {f.sample_rate for f in got} == {24_000}  # Piper's audio resampled to the call rate
    # the fallback spoke what was left (from Cartesia's aligned words), not the whole reply
    rest = piper.texts[0].split()
    assert rest[-3:] == ["four", "five", "six."] and "One" not in rest and len(rest) <= 4
    # every sample of Piper's part arrived, tail included (resampled: +-10 ms)
    piper_s = 0.02 * sum(len(w) for w in rest)
    assert len(pcm) / 2 / 24_000 >= piper_s - 0.01
    assert [s.provider for s in served] == ["cartesia", "piper"]
    assert b.breakers.snapshot("cartesia").total_failures == 1


async def test_tts_open_breaker_speaks_with_the_fallback_from_the_start() -> None:
    clock = Clock()
    b = board(clock)
    await open_breaker(b, "cartesia")
    cartesia, piper = ToneTTS(name="cartesia"), ToneTTS(name="piper", rate=22_050)
    stage = StageTTS(cartesia, name="cartesia", fallback=piper, fallback_name="piper", board=b)
    pcm, _ = await speak(stage, ["Hello there."])
    assert cartesia.texts == [] and piper.texts == ["Hello there."]
    assert len(pcm) > 0




# --- the board itself unreachable (its actor restarting or gone) ---------------------------
class UnreachableBoard:
    """The cluster's board while its actor restarts: acquire hangs, updates fail."""

    def __init__(self, inner: BoardService) -> None:
        self.inner = inner
        self.down = True
        self.asked = 0

    async def acquire(self, provider: str, lease: str) -> Any:
        self.asked += 1
        if self.down:
            await asyncio.Event().wait()  # never answers
        return await self.inner.acquire(provider, lease)

    async def report(self, provider: str, outcome: Outcome | None) -> None:
        if self.down:
            raise ConnectionError("registry restarting")
        await self.inner.report(provider, outcome)

    async def release(self, provider: str, lease: str) -> None:
        if self.down:
            raise ConnectionError("registry restarting")
        await self.inner.release(provider, lease)


async def test_a_board_that_does_not_answer_lets_the_provider_speak_unchecked() -> None:
    """The registry restarting (or too loaded to answer in time) is no sign that Cartesia is
    down: the greeting goes to Cartesia after one short wait, later replies without waiting,
    and once the board answers again it decides as before, with no slot left over."""
    clock = Clock()
    inner = board(clock)
    registry = UnreachableBoard(inner)
    bounded = BoundedBoard(registry, acquire_timeout_s=0.05, update_timeout_s=0.05,
                           retry_after_s=5.0, clock=clock)
    cartesia, piper = ToneTTS(name="cartesia"), ToneTTS(name="piper", rate=22_050)
    stage = StageTTS(cartesia, name="cartesia", fallback=piper, fallback_name="piper",
                     board=bounded)
    pcm, _ = await speak(stage, ["Hello, this is the surgery."])
    assert cartesia.texts == ["Hello, this is the surgery."] and len(pcm) > 0
    # the next reply does not wait out the deadline again while the board restarts
    await speak(stage, ["How can I help?"])
    assert registry.asked == 1 and cartesia.texts[-1] == "How can I help?"
    assert piper.texts == []
    # back after retry_after_s: the board is asked, and decides, again
    registry.down, clock.now = False, clock.now + 5.0
    await speak(stage, ["Tuesday at ten."])
    assert cartesia.texts[-1] == "Tuesday at ten." and registry.asked == 2
    await asyncio.sleep(0.01)  # the first-audio report is sent in the background
    snap = inner.breakers.snapshot("cartesia")
    assert (snap.in_flight, snap.total_successes) == (0, 1)


async def test_unchecked_outcomes_count_without_freeing_slots() -> None:
    clock = Clock()
    inner = board(clock, min_requests=5)
    registry = UnreachableBoard(inner)
    bounded = BoundedBoard(registry, acquire_timeout_s=0.05, retry_after_s=5.0, clock=clock)
    assert (await bounded.acquire("openai", "a")).allowed  # unchecked: no answer
    registry.down = False
    clock.now += 5.0
    assert (await bounded.acquire("openai", "b")) is Admission.ADMITTED  # a real slot
    # the unchecked request's failure arrives first: counted, but "b" keeps its slot
    await bounded.report("openai", Outcome(ok=False, error="HTTP 500"))
    snap = inner.breakers.snapshot("openai")
    assert (snap.in_flight, snap.total_failures) == (1, 1)
    await bounded.report("openai", Outcome.success())
    assert inner.breakers.snapshot("openai").in_flight == 0


async def test_lost_outcomes_and_releases_do_not_end_the_reply() -> None:
    clock = Clock()
    registry = UnreachableBoard(board(clock))
    registry.down = False
    registry.report = registry.release = _restarting  # type: ignore[method-assign]
    bounded = BoundedBoard(registry, update_timeout_s=0.05, clock=clock)
    cloud = ScriptedLLM(["We open at nine."], name="openai")
    local = ScriptedLLM(["(local)"], name="local")
    stage = StageLLM(cloud, name="openai", fallback=local, fallback_name="local", board=bounded)
    assert (await collect(stage.chat(chat_ctx=chat()))).strip() == "We open at nine."
    assert local.requests == []


async def _restarting(*_: object) -> None:
    raise ConnectionError("registry restarting")


def test_a_failure_outcome_names_the_http_status_for_the_operator() -> None:
    refused = Outcome.failure(APIStatusError("handshake refused", status_code=401,
                                             retryable=False))
    assert refused.error is not None and "HTTP 401" in refused.error and not refused.transient
    dropped = Outcome.failure(ConnectionError("reset by peer"))
    assert dropped.error == "ConnectionError: reset by peer" and dropped.transient
