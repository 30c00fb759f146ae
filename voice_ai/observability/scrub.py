"""Keep phone numbers and secrets out of log lines and out of everything stored.

Two passes, applied to every line the log files receive and, through ``scrub_record``, to every
call record and event the store writes (SQLite, and so its backups) or spools:

- phone numbers: anything that looks like an E.164 number (``+`` then 8-15 digits of any
  script, separators allowed) and the digits of ``sip:``/``tel:`` URIs are masked with the
  system's one phone mask, ``voice_ai.telephony.phone.mask_phone`` (``+1********71``: country
  code and last two digits kept). Already masked numbers (``+1******67``) stay as they are.
- secrets: ``sk-...`` API keys, JWTs (LiveKit tokens), ``Bearer``/``Token`` credentials,
  ``api_key=...``-style fields, and any exact value registered with the scrubber (the configured
  API keys).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import replace

from voice_ai.records import CallRecord, TurnTimings
from voice_ai.telephony.phone import mask_phone, redact_numbers

__all__ = ["LOG_RECORD_ATTRS", "REDACTED", "Scrubber", "ScrubbingFilter", "scrub_record"]

REDACTED = "[REDACTED]"

# "+" then a digit (not 0), then 7-14 more digits with optional single separators between them.
# `\d` on purpose: digits of other scripts (fullwidth, Arabic-Indic) are still a number.
_E164 = re.compile(r"\+(?!0)\d(?:[\s.()-]?\d){7,14}(?!\d)")
_SIP_USER = re.compile(r"(?i)\b(sips?:|tel:)(\+?\d{6,15})(?=[@;>\s\"']|$)")
_SECRET_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
)
# a credential has a digit somewhere, which keeps prose like "basic authentication" intact
_AUTH_HEADER = re.compile(
    r"(?i)\b(bearer|token|basic)(\s+)(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{12,}"
)
_SECRET_FIELD = re.compile(
    r"(?i)\b([a-z_]*(?:api_key|apikey|secret|password|passwd|token)[a-z_]*)"
    r"(\s*[=:]\s*)(?![\d.]+(?:[\s,;&]|$))(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)
# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
LOG_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class Scrubber:
    """Masks phone numbers and secrets in text. ``secrets`` are exact values to redact."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first, so a key that contains another key is redacted whole
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._secrets:
            text = text.replace(value, REDACTED)
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(REDACTED, text)
        text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        text = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        text = _SIP_USER.sub(lambda m: m.group(1) + mask_phone(m.group(2)), text)
        return _E164.sub(lambda m: mask_phone(m.group(0)), text)


class ScrubbingFilter(logging.Filter):
    """Rewrites a record's message and fields in place so no handler sees the raw values."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self._scrub = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_voice_ai_scrubbed", False):
            return True
        record.msg = self._scrub(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key.startswith("_") or key in LOG_RECORD_ATTRS:
                continue
            if isinstance(value, str):
                setattr(record, key, self._scrub(value))
        setattr(record, "_voice_ai_scrubbed", True)  # noqa: B010  # LogRecord has no such attr
        return True



def scrub_record(record: CallRecord, scrub: Callable[[str], str]) -> CallRecord:
    """``record`` with every free-text field through ``scrub`` (the log scrubber), ready to be
    stored. Transcripts and the error text also lose every run of 7+ digits
    (``redact_numbers``): a caller who reads out a number says it without a ``+``, and a
    provider's error may quote one the same way."""

    def turn(t: TurnTimings) -> TurnTimings:
        return replace(t, user_text=redact_numbers(scrub(t.user_text)),
                       agent_text=redact_numbers(scrub(t.agent_text)))

    return replace(
        record,
        caller_masked=scrub(record.caller_masked),
        node_id=scrub(record.node_id),
        error=redact_numbers(scrub(record.error)),
        recording_path=scrub(record.recording_path),
        turns=tuple(turn(t) for t in record.turns),
    )
