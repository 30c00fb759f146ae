from __future__ import annotations

import pytest

from voice_ai.telephony.phone import InvalidPhoneNumber, mask_phone, parse_e164, redact_numbers

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("raw", ["+15550100067", "  +4930123456 ", "+380441234567"])
def test_valid_e164_numbers_are_returned_canonical(raw: str) -> None:
    assert parse_e164(raw) == raw.strip()


@pytest.mark.parametrize(
    "raw",
    ["15550100067", "+1 555 010 0067", "+1-555-0100067", "+05550100067", "+1555", "",
     "+1234567890123456", "call me", "+1555010006x"],
)
def test_invalid_numbers_raise_a_clear_value_error(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=r"not an E\.164 phone number.*expected '\+'"):
        parse_e164(raw)
    assert issubclass(InvalidPhoneNumber, ValueError)


def test_the_error_message_never_repeats_the_full_number() -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        parse_e164("+1 555 010 0067")
    assert "5550100" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+1555010067", "+1*******67"),  # NANP: one-digit country code
        ("+4930123456", "+49******56"),  # two-digit code
        ("+380441234567", "+380*******67"),  # three-digit code
        ("+79161234567", "+7********67"),
        ("5550100067", "********67"),  # no '+': no country code guess
        ("12", "***"),
        ("", ""),
    ],
)
def test_mask_keeps_plus_country_code_and_last_two_digits(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


def test_redact_numbers_masks_numbers_inside_room_names() -> None:
    assert redact_numbers("call-_+15550100067_a1b2") == "call-_+1********67_a1b2"
    assert redact_numbers("call-out-3f2a9c") == "call-out-3f2a9c"


@pytest.mark.parametrize(
    "raw",
    ["+\uff11\uff15\uff15\uff15\uff10\uff11\uff10\uff10\uff10\uff16\uff17",  # fullwidth
     "+\u0661\u0665\u0665\u0665\u0660\u0661\u0660\u0660\u0660\u0666\u0667",  # Arabic-Indic
     "+1555\u0966100067",  # one Devanagari zero among ASCII digits
     "+15550100067\u00b2"],  # a superscript two
)
def test_only_ascii_digits_make_a_dialable_number(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match="ASCII digits"):
        parse_e164(raw)


def test_the_mask_hides_numbers_written_in_other_scripts_too() -> None:
    fullwidth = "+\uff11\uff15\uff15\uff15\uff10\uff11\uff10\uff10\uff10\uff16\uff17"
    assert mask_phone(fullwidth) == "+1********67"


def test_redact_numbers_masks_numbers_read_out_with_separators() -> None:
    assert redact_numbers("call me on 555 010 0068 or (555) 010-0069") == (
        "call me on ********68 or (********69")
    assert redact_numbers("turn 3 took 1.25 s") == "turn 3 took 1.25 s"
