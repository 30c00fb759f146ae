"""The one line format of every log file, and the names of the special loggers.

A line reads::

    2025-06-01 14:03:22.123 INFO     voice_ai.audit CALL_END call_id=c-17 outcome=failed ...

timestamp (local time, ``YYYY-MM-DD HH:MM:SS.mmm``, so the runbook's
``grep "$(date '+%Y-%m-%d %H')"`` finds the hour), level name, logger name, the static message,
then the record's fields as ``key=value`` (values with spaces are quoted). Fields are whatever the
caller passed as ``extra=``: ``log.info("call admitted", extra={"call_id": cid})``.
"""

from __future__ import annotations

import logging
import time

from voice_ai.observability.scrub import LOG_RECORD_ATTRS, Scrubber

__all__ = [
    "AUDIT_LOGGER",
    "PERFORMANCE_LOGGER",
    "LineFormatter",
    "format_fields",
    "record_fields",
]

AUDIT_LOGGER = "voice_ai.audit"
PERFORMANCE_LOGGER = "voice_ai.performance"


def _format_value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    if not text or any(c in text for c in ' "=\t\n'):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


def format_fields(fields: dict[str, object]) -> str:
    """``{"a": 1, "b": "x y"}`` -> ``a=1 b="x y"``; floats with three decimals."""
    return " ".join(f"{key}={_format_value(value)}" for key, value in fields.items())


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The fields a record carries: every attribute that came in through ``extra=``."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in LOG_RECORD_ATTRS and not key.startswith("_")
    }


class LineFormatter(logging.Formatter):
    """Formats and scrubs one record into the line described in the module docstring."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self._scrub = scrubber

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        parts = [f"{stamp}.{int(record.msecs):03d}", f"{record.levelname:<8}", record.name,
                 record.getMessage()]
        fields = record_fields(record)
        if fields:
            parts.append(format_fields(fields))
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return self._scrub(line)
