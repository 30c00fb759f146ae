"""Phone numbers: E.164 validation, the one mask, and redaction inside free text.

``parse_e164`` is the only gate a number passes on its way in (calls API, provisioning YAML);
``mask_phone`` is the only form a number takes on its way out (logs, records, the store, HTTP
answers, metrics). The log scrubber (``voice_ai.observability.scrub``) finds numbers in text
and masks them with ``mask_phone`` too, so every masked number in the system looks the same.
"""

from __future__ import annotations

import re

__all__ = ["InvalidPhoneNumber", "mask_phone", "parse_e164", "redact_numbers"]

# ASCII digits only: `\d` would also accept Arabic-Indic, fullwidth or Devanagari digits,
# which a SIP trunk would dial as something else (or not at all).
_E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)

# ITU-T E.164 country codes of one and two digits; every other code has three digits.
_ONE_DIGIT_CODES = frozenset("17")
_TWO_DIGIT_CODES = frozenset(
    "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 "
    "60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98".split()
)
_KEEP_LAST = 2


class InvalidPhoneNumber(ValueError):
    """A phone number that is not in E.164 form (``+`` then 7 to 15 ASCII digits, no leading
    0)."""


def parse_e164(value: str) -> str:
    """Return ``value`` as a canonical E.164 number or raise ``InvalidPhoneNumber``.

    Surrounding whitespace is tolerated; anything else (spaces, dashes, a missing ``+``,
    non-ASCII digits) is refused so that what the caller sent is what gets dialled.
    """
    number = value.strip() if isinstance(value, str) else ""
    if not _E164.fullmatch(number):
        raise InvalidPhoneNumber(
            f"not an E.164 phone number ({mask_phone(number) or 'empty'}): expected '+' "
            "followed by 7 to 15 ASCII digits, country code first, e.g. +4930123456"
        )
    return number


def _country_code_length(digits: str) -> int:
    if digits[:1] in _ONE_DIGIT_CODES:
        return 1
    if digits[:2] in _TWO_DIGIT_CODES:
        return 2
    return 3


def mask_phone(value: str) -> str:
    """Mask a phone number: ``+15550100067`` -> ``+1********67``.

    Keeps the ``+``, a guess of the country code and the last two digits; separators go.
    Anything that is not a plausible number (too few digits, free text) is masked entirely,
    never echoed. Digits of any script count (the scrubber's ``\\d`` finds them too) and are
    shown as ASCII digits.
    """
    if not value:
        return ""
    digits = "".join(str(int(ch)) for ch in value if ch.isdecimal())
    if len(digits) < 7:
        return "***"
    if value.lstrip().startswith("+"):
        keep = _country_code_length(digits)
        hidden = len(digits) - keep - _KEEP_LAST
        return f"+{digits[:keep]}{'*' * hidden}{digits[-_KEEP_LAST:]}"
    return f"{'*' * (len(digits) - _KEEP_LAST)}{digits[-_KEEP_LAST:]}"


# 7-15 digits, up to two separators (space . - ( )) between them: "(555) 010-0067" too
_NUMBER_IN_TEXT = re.compile(r"(?<!\d)\+?\d(?:[\s.()-]{0,2}\d){6,14}(?!\d)")


def redact_numbers(text: str) -> str:
    """Mask every phone-number-like run of digits in free text (room names, SIP identities).

    LiveKit's per-caller dispatch rule names rooms ``call-_<caller number>_<random>``; anything
    that shows a room name passes it through this, and so do stored transcripts. Unlike the
    log scrubber it also masks digits without a ``+`` (a caller reads a number out without
    one; a room name holds nothing else that long).
    """
    return _NUMBER_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)
