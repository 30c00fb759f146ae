"""The runbook's log files: routing, line format, scrubbing, rotation, forwarding across processes,
and every runbook grep against the logs of a run with one failed call."""

from __future__ import annotations

import logging
import multiprocessing
import queue as queue_module
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from voice_ai.observability.logs import (
    AUDIT_LOGGER,
    LOG_FILES,
    PERFORMANCE_LOGGER,
    ForwardingHandler,
    LogFiles,
    LogSink,
    audit_call_end,
    audit_call_start,
    configure_file_logging,
    install_log_forwarding,
    log_memory_usage,
    log_throughput,
    log_turn_latency,
)
from voice_ai.observability.scrub import REDACTED, Scrubber
from voice_ai.records import CallDirection, CallRecord, EndReason, TurnTimings

pytestmark = pytest.mark.unit

LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S+ \S"
)
CALLER = "+1******67"
FULL_NUMBER = "+14155552671"  # a made-up number the scrubber must mask wherever it appears


@pytest.fixture
def log_files(tmp_path: Path) -> Iterator[LogFiles]:
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("", AUDIT_LOGGER, PERFORMANCE_LOGGER)}
    files = configure_file_logging(tmp_path / "logs", "INFO", secrets=["dg-secret-value-123"])
    yield files
    root.removeHandler(files)
    files.close()
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def read(files: LogFiles, key: str) -> list[str]:
    files.flush()
    path = files.paths[key]
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def turn(index: int, e2e: float = 0.9) -> TurnTimings:
    return TurnTimings(
        index=index, ended_speaking_at=time.time(), e2e_s=e2e, stt_s=0.21, end_of_turn_s=0.3,
        llm_ttft_s=0.25, tts_ttfb_s=0.12, stt_provider="whisper", llm_provider="local",
        tts_provider="piper",
    )


def record(
    call_id: str, reason: EndReason, turns: int, error: str = "", node: str = "node-1"
) -> CallRecord:
    now = time.time()
    return CallRecord(
        call_id=call_id, direction=CallDirection.SIMULATED, started_at=now - 30, ended_at=now,
        end_reason=reason, caller_masked=CALLER, node_id=node, setup_s=0.04, error=error,
        turns=tuple(turn(i) for i in range(1, turns + 1)),
    )


# --- line format and routing -------------------------------------------------------------------

def test_audit_lines_have_timestamp_level_and_fields(log_files: LogFiles) -> None:
    audit_call_start("c-1", "inbound", CALLER, "node-1")
    audit_call_end(record("c-1", EndReason.CALLER_HANGUP, turns=2))
    start, end = read(log_files, "audit")
    assert LINE.match(start) and LINE.match(end)
    assert " INFO     voice_ai.audit CALL_START call_id=c-1 direction=inbound" in start
    assert f"caller={CALLER}" in start
    assert "CALL_END call_id=c-1 outcome=completed end_reason=caller_hangup" in end
    assert "turns=2" in end and "duration_s=30.000" in end
    assert "failed" not in end


def test_failed_call_end_is_an_error_with_the_word_failed(log_files: LogFiles) -> None:
    audit_call_end(record("c-9", EndReason.ERROR, turns=1, error="llm timed out"))
    (line,) = read(log_files, "audit")
    assert " ERROR    voice_ai.audit CALL_END call_id=c-9 outcome=failed end_reason=error" in line
    assert 'error="llm timed out"' in line
    assert read(log_files, "errors") == [line]
    assert read(log_files, "main") == [line]


def test_latency_lines_go_to_performance_and_main_log(log_files: LogFiles) -> None:
    log_turn_latency("c-1", turn(1, e2e=1.234))
    log_throughput(window_s=60, calls_started=3, calls_ended=2, turns=12, active_calls=1)
    log_memory_usage("stt_pool", 512 * 1024 * 1024, node="node-1")
    perf = read(log_files, "performance")
    assert len(perf) == 3
    assert re.search(
        r"LATENCY: call_id=c-1 turn=1 stt_latency=0\.210 eot_latency=0\.300 llm_latency=0\.250 "
        r"tts_latency=0\.120 e2e=1\.234 stt_provider=whisper", perf[0],
    )
    assert "THROUGHPUT: window_s=60.000 calls_per_s=0.050 turns_per_s=0.200" in perf[1]
    assert "memory_usage component=stt_pool rss_bytes=536870912 rss_mb=512.000" in perf[2]
    # only LATENCY reaches the main log; the periodic lines would drown it
    assert read(log_files, "main") == [perf[0]]


def test_unmeasured_stages_are_left_out_of_the_latency_line(log_files: LogFiles) -> None:
    log_turn_latency("c-2", TurnTimings(index=3, ended_speaking_at=0.0, e2e_s=0.8, stt_s=0.2))
    (line,) = read(log_files, "performance")
    assert "stt_latency=0.200" in line and "e2e=0.800" in line
    assert "llm_latency" not in line and "tts_latency" not in line


def test_levels_route_to_main_and_errors(log_files: LogFiles) -> None:
    log = logging.getLogger("voice_ai.pipeline")
    log.debug("not written at INFO")
    log.info("turn started", extra={"call_id": "c-1", "turn": 1})
    log.warning("slow provider", extra={"provider": "local", "latency_s": 1.7})
    log.error("provider failed", extra={"provider": "local"})
    main = read(log_files, "main")
    assert [re.sub(r"^\S+ \S+ \S+ +\S+ ", "", line) for line in main] == [
        "turn started call_id=c-1 turn=1",
        "slow provider provider=local latency_s=1.700",
        "provider failed provider=local",
    ]
    assert len(read(log_files, "errors")) == 1
    assert read(log_files, "audit") == []


def test_audit_is_written_even_when_log_level_is_warning(tmp_path: Path) -> None:
    files = configure_file_logging(tmp_path / "logs", "WARNING")
    try:
        audit_call_start("c-1", "inbound", CALLER, "node-1")
        logging.getLogger("voice_ai.pipeline").info("chatter")
        assert len(read(files, "audit")) == 1
        assert read(files, "main") == []
    finally:
        logging.getLogger().removeHandler(files)
        files.close()
        for name in ("", AUDIT_LOGGER, PERFORMANCE_LOGGER):
            logging.getLogger(name).setLevel(logging.NOTSET if name else logging.WARNING)


def test_exception_traceback_follows_the_line(log_files: LogFiles) -> None:
    try:
        raise ConnectionRefusedError("connection refused")
    except ConnectionRefusedError:
        logging.getLogger("voice_ai.providers").exception("stt request failed")
    errors = read(log_files, "errors")
    assert errors[0].endswith("stt request failed")
    assert errors[-1] == "ConnectionRefusedError: connection refused"


def test_files_rotate_by_size(tmp_path: Path) -> None:
    files = configure_file_logging(tmp_path / "logs", "INFO", max_bytes=2_000, backup_count=2)
    try:
        for i in range(200):
            logging.getLogger("voice_ai.pipeline").info("turn started", extra={"turn": i})
        files.flush()
        logs = tmp_path / "logs"
        assert (logs / "voice_ai_agent.log.1").exists()
        assert (logs / "voice_ai_agent.log.2").exists()
        assert not (logs / "voice_ai_agent.log.3").exists()
        assert (logs / "voice_ai_agent.log").stat().st_size <= 2_000
    finally:
        logging.getLogger().removeHandler(files)
        files.close()


# --- scrubbing ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"caller {FULL_NUMBER} dialed", "caller +1********71 dialed"),
        ("caller +1 415-555-2671 dialed", "caller +1********71 dialed"),
        ("from=+442071838750", "from=+44********50"),
        ("uri=sip:14155552671@pbx.example", "uri=sip:*********71@pbx.example"),
        ("fullwidth +\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff12\uff16\uff17\uff11 digits",
         "fullwidth +1********71 digits"),
        ("tel:+14155552671;ext=1", "tel:+1********71;ext=1"),
    ],
)
def test_scrubber_masks_phone_numbers(text: str, expected: str) -> None:
    assert Scrubber()(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"caller={CALLER}",  # already masked
        "2025-06-01 14:03:22.123 rss_bytes=536870912 created=1717250602.123",
        "e2e=1.234 turns=12 max_tokens=48 llm_first_token_s=0.250",
    ],
)
def test_scrubber_leaves_other_numbers_alone(text: str) -> None:
    assert Scrubber()(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "using key sk-proj-abcdefghijklmnopqrstuvwx",
        "Authorization: Bearer abcdefghijklmnop1234",
        "header Token 0123456789abcdef0123",
        "deepgram_api_key=abc123def456",
        'config livekit_api_secret="s3cr3t value"',
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
        "oops dg-secret-value-123 leaked",
    ],
)
def test_scrubber_redacts_secrets(text: str) -> None:
    scrubbed = Scrubber(["dg-secret-value-123"])(text)
    assert REDACTED in scrubbed
    for secret in ("abcdefghijklmnop", "0123456789abcdef", "abc123def456", "s3cr3t",
                   "c2lnbmF0dXJl", "dg-secret-value-123"):
        assert secret not in scrubbed


def test_the_scrubber_masks_with_the_one_phone_mask() -> None:
    from voice_ai.telephony.phone import mask_phone

    assert Scrubber()(FULL_NUMBER) == mask_phone(FULL_NUMBER) == "+1********71"
    assert mask_phone("123") == "***"


def test_no_full_number_or_key_reaches_any_file(log_files: LogFiles) -> None:
    log = logging.getLogger("voice_ai.telephony")
    log.warning("unexpected caller format", extra={"caller": FULL_NUMBER})
    log.error("sip trunk said %s", f"no route to {FULL_NUMBER}")
    log.error("provider rejected key", extra={"key": "dg-secret-value-123"})
    text = "\n".join(read(log_files, "main") + read(log_files, "errors"))
    assert FULL_NUMBER not in text and "4155552671" not in text
    assert "dg-secret-value-123" not in text
    assert "caller=+1********71" in text and "no route to +1********71" in text


# --- forwarding ----------------------------------------------------------------------------------

class Collector:
    """A sink that keeps the batches it received."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, object]]] = []

    def __call__(self, batch: list[dict[str, object]]) -> None:
        self.batches.append(batch)


def forwarding_logger(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(f"voice_ai.test_forwarding.{id(handler)}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log


def test_forwarding_batches_by_size_and_flushes_errors_at_once() -> None:
    sink = Collector()
    handler = ForwardingHandler(sink, node="node-2", batch_size=3, flush_interval_s=None)
    log = forwarding_logger(handler)
    for i in range(4):
        log.info("turn started", extra={"turn": i})
    assert [len(b) for b in sink.batches] == [3]
    log.error("provider failed")
    assert [len(b) for b in sink.batches] == [3, 2]
    first = sink.batches[0][0]
    assert first["msg"] == "turn started" and first["levelname"] == "INFO"
    assert first["fields"] == {"turn": 0, "node": "node-2"}
    handler.close()


def test_forwarding_flushes_on_a_timer() -> None:
    sink = Collector()
    handler = ForwardingHandler(sink, flush_interval_s=0.05)
    forwarding_logger(handler).info("turn started")
    deadline = time.monotonic() + 5
    while not sink.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    handler.close()
    assert [b[0]["msg"] for b in sink.batches] == ["turn started"]


def test_forwarding_survives_a_failing_or_logging_sink(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(batch: list[dict[str, object]]) -> None:
        logging.getLogger("voice_ai").error("sink is logging while sending")  # must not loop
        raise ConnectionError("hub unreachable")

    handler = ForwardingHandler(broken, flush_interval_s=None, max_buffered=2)
    log = forwarding_logger(handler)
    logging.getLogger("voice_ai").addHandler(handler)
    try:
        for _ in range(3):
            log.info("turn started")  # the third is over max_buffered
        handler.flush()
        assert handler.dropped == 3
        assert "records dropped" in capsys.readouterr().err
    finally:
        logging.getLogger("voice_ai").removeHandler(handler)
        handler.close()


def test_forwarded_records_are_scrubbed_before_they_leave() -> None:
    sink = Collector()
    handler = ForwardingHandler(sink, flush_interval_s=None)
    forwarding_logger(handler).warning("caller %s", FULL_NUMBER, extra={"raw": FULL_NUMBER})
    handler.flush()
    (item,) = sink.batches[0]
    assert item["msg"] == "caller +1********71"
    assert item["fields"] == {"raw": "+1********71"}
    handler.close()


def test_sink_writes_forwarded_records_and_rejects_garbage(log_files: LogFiles) -> None:
    sink = LogSink(log_files)
    written = sink.ingest([
        {"name": "voice_ai.pipeline", "levelno": logging.ERROR, "msg": "provider failed",
         "created": time.time(), "msecs": 5.0, "fields": {"node": "node-7", "name": "clash"}},
        {"name": "voice_ai.pipeline"},
        "not a record",  # type: ignore[list-item]  # what a broken sender might send
    ])
    assert written == 1 and sink.rejected == 2
    (line,) = read(log_files, "errors")
    assert LINE.match(line)
    assert line.endswith("ERROR    voice_ai.pipeline provider failed node=node-7")


# --- a run with one failed call, forwarded from another process, then the runbook's greps -----

def call_actor_on_another_node(queue: multiprocessing.Queue[list[dict[str, object]]]) -> None:
    """Runs in a spawned process: a call actor that forwards its records to the writer."""
    handler = install_log_forwarding(queue.put, "INFO", node="node-2", flush_interval_s=None)
    audit_call_start("c-3", "inbound", CALLER, "node-2")
    log_turn_latency("c-3", turn(1, e2e=1.1))
    logging.getLogger("voice_ai.telephony").info("caller joined", extra={"sip_from": FULL_NUMBER})
    try:
        raise ConnectionRefusedError("connection refused")
    except ConnectionRefusedError:
        logging.getLogger("voice_ai.providers").exception("llm request failed")
    audit_call_end(
        record("c-3", EndReason.ERROR, turns=1, error="llm request failed", node="node-2")
    )
    log_memory_usage("call_actor", 300 * 1024 * 1024, node="node-2")
    handler.close()


def simulated_run(files: LogFiles) -> None:
    """Two completed calls here, one failed call in another process; 5 turns in all."""
    for call_id, turns in (("c-1", 2), ("c-2", 2)):
        audit_call_start(call_id, "inbound", CALLER, "node-1")
        for i in range(1, turns + 1):
            log_turn_latency(call_id, turn(i))
        audit_call_end(record(call_id, EndReason.CALLER_HANGUP, turns))
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[list[dict[str, object]]] = ctx.Queue()
    child = ctx.Process(target=call_actor_on_another_node, args=(queue,))
    child.start()
    sink = LogSink(files)
    received = 0
    deadline = time.monotonic() + 60
    while received < 6 and time.monotonic() < deadline:  # the child logs 6 records
        try:
            received += sink.ingest(queue.get(timeout=0.5))
        except queue_module.Empty:
            assert child.is_alive() or not queue.empty(), f"child exited {child.exitcode}"
    child.join(timeout=60)
    assert received == 6
    assert child.exitcode == 0
    log_throughput(window_s=60, calls_started=3, calls_ended=3, turns=5, active_calls=0)
    log_memory_usage("telemetry_hub", 200 * 1024 * 1024, node="node-1")
    files.flush()


def grep(cwd: Path, command: str) -> list[str]:
    out = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                         check=False)
    assert out.returncode in (0, 1), out.stderr  # grep exits 1 when nothing matches
    return out.stdout.splitlines()


@pytest.mark.slow
def test_runbook_greps_on_a_run_with_one_failed_call(log_files: LogFiles, tmp_path: Path) -> None:
    hour_before = time.strftime("%Y-%m-%d %H")
    simulated_run(log_files)
    run = tmp_path  # the runbook's commands run from the directory holding logs/

    assert sorted(grep(run, "ls logs/")) == sorted(LOG_FILES.values())
    # Morning checklist
    assert grep(run, 'grep -c "ERROR" logs/voice_ai_agent.log | tail -1') == ["2"]
    latency = grep(run, 'grep "LATENCY:" logs/voice_ai_agent_performance.log | tail -20')
    assert len(latency) == 5
    for line in latency:
        for key in ("stt_latency=", "llm_latency=", "tts_latency=", "e2e="):
            assert key in line
    # Midday: calls in the last hour
    if time.strftime("%Y-%m-%d %H") == hour_before:  # the hour did not turn during the run
        hour = '| grep "$(date \'+%Y-%m-%d %H\')" | wc -l'
        assert grep(run, f'grep "CALL_START" logs/voice_ai_agent_audit.log {hour}') == ["3"]
        assert grep(run, f'grep "CALL_END" logs/voice_ai_agent_audit.log {hour}') == ["3"]
    # High latency alert
    errors_tail = grep(run, "tail -100 logs/voice_ai_agent_errors.log")
    assert any("llm request failed" in line for line in errors_tail)
    stages = grep(run, 'grep "stt_latency\\|llm_latency\\|tts_latency" logs/voice_ai_agent.log'
                       " | tail -20")
    assert len(stages) == 5 and all("LATENCY:" in line for line in stages)
    # Low success rate alert
    error_patterns = grep(run, 'grep "ERROR\\|FAILED" logs/voice_ai_agent_errors.log | tail -50')
    assert len(error_patterns) == 2
    failed = grep(run, 'grep "CALL_END.*failed" logs/voice_ai_agent_audit.log | tail -20')
    assert len(failed) == 1
    assert "call_id=c-3 outcome=failed end_reason=error" in failed[0]
    assert "node=node-2" in failed[0]
    # Memory
    memory = grep(run, 'grep "memory_usage" logs/voice_ai_agent_performance.log | tail -20')
    assert {re.search(r"component=(\S+)", line)[1] for line in memory} == {  # type: ignore[index]
        "call_actor", "telemetry_hub"}
    # Log analysis
    patterns = 'grep -E "(ERROR|CRITICAL|FAILED)" logs/voice_ai_agent.log | tail -50'
    assert len(grep(run, patterns)) == 2
    calls = grep(run, 'grep "CALL_START\\|CALL_END" logs/voice_ai_agent_audit.log | tail -100')
    assert [line.split()[4] for line in calls].count("CALL_START") == 3
    assert [line.split()[4] for line in calls].count("CALL_END") == 3
    assert len(grep(run, 'grep "LATENCY:\\|THROUGHPUT:" logs/voice_ai_agent_performance.log'
                         " | tail -50")) == 6
    issues = grep(run, 'grep -i "timeout\\|connection\\|refused" logs/voice_ai_agent.log')
    assert "ConnectionRefusedError: connection refused" in issues
    # and nothing personal anywhere
    everything = "\n".join(p.read_text() for p in (tmp_path / "logs").iterdir())
    assert FULL_NUMBER not in everything
    assert "sip_from=+1********71" in everything
