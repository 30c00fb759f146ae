"""The runbook's log files, and how records from every process reach them.

One process (the telemetry hub on the head node) writes ``logs/``; every other process forwards::

    actor on any node                                  head node, telemetry hub
    logging.getLogger(...).info(...)                   LogSink.ingest(batch)
      -> ForwardingHandler (scrub, batch as dicts) ---->  -> LogFiles (route, format, rotate)
         sink = hub.ingest_logs.remote                      -> logs/voice_ai_agent*.log

Routing in ``LogFiles`` (see docs/logging.md):

- ``voice_ai_agent.log``: every record at or above the configured level, except the periodic
  ``THROUGHPUT:``/``memory_usage`` lines of the performance logger (``LATENCY:`` lines are kept,
  the runbook greps ``stt_latency`` there);
- ``voice_ai_agent_errors.log``: every record at ERROR or above;
- ``voice_ai_agent_performance.log``: the ``voice_ai.performance`` logger;
- ``voice_ai_agent_audit.log``: the ``voice_ai.audit`` logger (``CALL_START``/``CALL_END``).

Each file rotates by size (``RotatingFileHandler``). The functions the call code uses to write
audit and performance lines live in ``voice_ai.observability.audit`` and are re-exported here.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from logging.handlers import RotatingFileHandler
from pathlib import Path

from voice_ai.observability.audit import (
    audit_call_end,
    audit_call_rejected,
    audit_call_start,
    log_memory_usage,
    log_throughput,
    log_turn_latency,
)
from voice_ai.observability.log_format import (
    AUDIT_LOGGER,
    PERFORMANCE_LOGGER,
    LineFormatter,
    record_fields,
)
from voice_ai.observability.scrub import LOG_RECORD_ATTRS, Scrubber, ScrubbingFilter

__all__ = [
    "AUDIT_LOGGER",
    "LOG_FILES",
    "PERFORMANCE_LOGGER",
    "ForwardingHandler",
    "LogFiles",
    "LogSink",
    "audit_call_end",
    "audit_call_rejected",
    "audit_call_start",
    "configure_file_logging",
    "install_log_forwarding",
    "log_memory_usage",
    "log_throughput",
    "log_turn_latency",
]

LOG_FILES = {
    "main": "voice_ai_agent.log",
    "errors": "voice_ai_agent_errors.log",
    "performance": "voice_ai_agent_performance.log",
    "audit": "voice_ai_agent_audit.log",
}
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 10

LogBatch = list[dict[str, object]]


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def _is_under(name: str, parent: str) -> bool:
    return name == parent or name.startswith(parent + ".")


def _set_levels(level: int) -> None:
    logging.getLogger().setLevel(level)
    # audit and performance lines are written whatever LOG_LEVEL says
    for name in (AUDIT_LOGGER, PERFORMANCE_LOGGER):
        logging.getLogger(name).setLevel(min(level, logging.INFO))


class LogFiles(logging.Handler):
    """Writes records into the four runbook files, each rotating by size."""

    def __init__(
        self,
        log_dir: Path,
        level: int = logging.INFO,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backup_count: int = DEFAULT_BACKUP_COUNT,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(logging.NOTSET)
        self.log_dir = log_dir
        self.main_level = level
        log_dir.mkdir(parents=True, exist_ok=True)
        scrubber = Scrubber(secrets)
        formatter = LineFormatter(scrubber)
        self._files: dict[str, RotatingFileHandler] = {}
        for key, file_name in LOG_FILES.items():
            handler = RotatingFileHandler(
                log_dir / file_name, maxBytes=max_bytes, backupCount=backup_count,
                encoding="utf-8",
            )
            handler.setFormatter(formatter)
            self._files[key] = handler
        self.addFilter(ScrubbingFilter(scrubber))

    @property
    def paths(self) -> dict[str, Path]:
        return {key: self.log_dir / name for key, name in LOG_FILES.items()}

    def targets(self, record: logging.LogRecord) -> list[str]:
        """The files (keys of ``LOG_FILES``) a record is written to."""
        out = []
        performance = _is_under(record.name, PERFORMANCE_LOGGER)
        if record.levelno >= self.main_level and (
            not performance or record.getMessage().startswith("LATENCY:")
        ):
            out.append("main")
        if record.levelno >= logging.ERROR:
            out.append("errors")
        if performance:
            out.append("performance")
        if _is_under(record.name, AUDIT_LOGGER):
            out.append("audit")
        return out

    def emit(self, record: logging.LogRecord) -> None:
        for key in self.targets(record):
            self._files[key].handle(record)

    def flush(self) -> None:
        for handler in self._files.values():
            handler.flush()

    def close(self) -> None:
        for handler in self._files.values():
            handler.close()
        super().close()


def configure_file_logging(
    log_dir: Path | str,
    level: str | int = "INFO",
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    backup_count: int = DEFAULT_BACKUP_COUNT,
    secrets: Iterable[str] = (),
) -> LogFiles:
    """Make this process the writer of ``log_dir``: attach ``LogFiles`` to the root logger.

    Call once, in the one process that owns the files (the telemetry hub; or the CLI when it runs
    without Ray). Calling again replaces the previous ``LogFiles``. ``secrets`` are exact values
    (API keys) to redact wherever they appear.
    """
    number = _level_number(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, LogFiles)]:
        root.removeHandler(old)
        old.close()
    files = LogFiles(
        Path(log_dir), number, max_bytes=max_bytes, backup_count=backup_count, secrets=secrets
    )
    root.addHandler(files)
    _set_levels(number)
    return files


def _plain(value: object) -> object:
    if value is None or type(value) in (str, int, float, bool):
        return value
    return str(value)


def record_to_dict(record: logging.LogRecord, node: str = "") -> dict[str, object]:
    """A LogRecord as a dict of plain values, safe to pickle and send to another node."""
    exc_text = record.exc_text
    if record.exc_info and not exc_text:
        exc_text = logging.Formatter().formatException(record.exc_info)
    fields = {key: _plain(value) for key, value in record_fields(record).items()}
    if node and "node" not in fields:
        fields["node"] = node
    return {
        "name": record.name,
        "levelno": record.levelno,
        "levelname": record.levelname,
        "msg": record.getMessage(),
        "created": record.created,
        "msecs": record.msecs,
        "process": record.process,
        "exc_text": exc_text,
        "stack_info": record.stack_info,
        "fields": fields,
    }


class ForwardingHandler(logging.Handler):
    """Batches this process's records as plain dicts and hands them to ``sink``.

    A batch leaves when it holds ``batch_size`` records, when an ERROR arrives, every
    ``flush_interval_s`` (a daemon thread; ``None`` disables it, then call ``flush()``), and on
    ``close()``. Records are scrubbed before they leave. A failing sink never raises into the
    caller: its batch is counted in ``dropped``, as are records beyond ``max_buffered``.
    Records logged by the sink itself are dropped, so forwarding cannot loop.
    """

    def __init__(
        self,
        sink: Callable[[LogBatch], None],
        *,
        node: str = "",
        level: int = logging.NOTSET,
        batch_size: int = 100,
        flush_interval_s: float | None = 1.0,
        max_buffered: int = 10_000,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(level)
        self._sink = sink
        self._node = node
        self._batch_size = batch_size
        self._max_buffered = max_buffered
        self._buffer: LogBatch = []
        self._buffer_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._local = threading.local()
        self._stop = threading.Event()
        self.dropped = 0
        self.addFilter(ScrubbingFilter(Scrubber(secrets)))
        self._thread: threading.Thread | None = None
        if flush_interval_s is not None:
            self._thread = threading.Thread(
                target=self._flush_every, args=(flush_interval_s,), name="log-forwarder",
                daemon=True,
            )
            self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:
        if getattr(self._local, "sending", False):
            return False
        return bool(super().handle(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            item = record_to_dict(record, self._node)
        except Exception:  # a record that cannot be rendered must not break the caller
            self.handleError(record)
            return
        with self._buffer_lock:
            if len(self._buffer) >= self._max_buffered:
                self.dropped += 1
                return
            self._buffer.append(item)
            full = len(self._buffer) >= self._batch_size
        if full or record.levelno >= logging.ERROR:
            self.flush()

    def flush(self) -> None:
        with self._send_lock:
            with self._buffer_lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return
            self._local.sending = True
            try:
                self._sink(batch)
            except Exception as e:  # the sink is remote; losing logs must not fail a call
                self.dropped += len(batch)
                sys.stderr.write(f"log forwarding failed, {len(batch)} records dropped: {e!r}\n")
            finally:
                self._local.sending = False

    def _flush_every(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
        super().close()


def install_log_forwarding(
    sink: Callable[[LogBatch], None],
    level: str | int = "INFO",
    *,
    node: str = "",
    secrets: Iterable[str] = (),
    flush_interval_s: float | None = 1.0,
) -> ForwardingHandler:
    """Forward this process's records to ``sink`` (in an actor: ``hub.ingest_logs.remote``)."""
    number = _level_number(level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, ForwardingHandler)]:
        root.removeHandler(old)
        old.close()
    handler = ForwardingHandler(
        sink, node=node, secrets=secrets, flush_interval_s=flush_interval_s
    )
    root.addHandler(handler)
    _set_levels(number)
    return handler


def _record_from_dict(item: Mapping[str, object]) -> logging.LogRecord | None:
    name, levelno, msg = item.get("name"), item.get("levelno"), item.get("msg")
    if not isinstance(name, str) or not isinstance(levelno, int) or not isinstance(msg, str):
        return None
    attrs: dict[str, object] = {
        "name": name,
        "levelno": levelno,
        "levelname": logging.getLevelName(levelno),
        "msg": msg,
        "args": None,
    }
    for key in ("created", "msecs", "process", "exc_text", "stack_info"):
        if key in item:
            attrs[key] = item[key]
    fields = item.get("fields")
    if isinstance(fields, Mapping):
        for key, value in fields.items():
            if isinstance(key, str) and key not in LOG_RECORD_ATTRS and not key.startswith("_"):
                attrs[key] = value
    return logging.makeLogRecord(attrs)


class LogSink:
    """Re-emits forwarded records into this process's ``LogFiles``; never raises."""

    def __init__(self, files: LogFiles) -> None:
        self._files = files
        self.rejected = 0

    def ingest(self, batch: Iterable[Mapping[str, object]]) -> int:
        """Write one batch from ``ForwardingHandler``; return how many records were written."""
        written = 0
        for item in batch:
            record = _record_from_dict(item) if isinstance(item, Mapping) else None
            if record is None:
                self.rejected += 1
                continue
            self._files.handle(record)
            written += 1
        self._files.flush()
        return written
