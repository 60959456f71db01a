"""Tests for crypto.pseudonym: GB 11643 validation (known answers) and pseudonyms.

How the check characters below were derived
-------------------------------------------
GB 11643-1999 uses ISO 7064 MOD 11-2. Position i (1..17) has weight 2**(18-i) mod 11:

    position  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16 17
    weight    7  9 10  5  8  4  2  1  6  3  7  9 10  5  8  4  2

S = sum(digit_i * weight_i); check value = (12 - S mod 11) mod 11; 10 is written "X".
Equivalently, over all 18 characters (X = 10) with weights 2**(18-i) mod 11 (the
check character's weight is 1), a valid number has total = 1 (mod 11); the
hypothesis test at the bottom uses that second form as an independent oracle.

11010519491231002X (the standard's own example: Beijing Dongcheng 110105, born 1949-12-31)
    digits   1  1  0  1  0  5  1  9  4  9  1  2  3  1  0  0  2
    products 7  9  0  5  0 20  2  9 24 27  7 18 30  5  0  0  4
    S = 167; 167 mod 11 = 2; (12 - 2) mod 11 = 10 -> "X"

440301199001010012 (Shenzhen 440301, born 1990-01-01)
    digits   4  4  0  3  0  1  1  9  9  0  0  1  0  1  0  0  1
    products 28 36 0 15  0  4  2  9 54  0  0  9  0  5  0  0  2
    S = 164; 164 mod 11 = 10; (12 - 10) mod 11 = 2 -> "2"

510104198507150030 (Chengdu Jinjiang 510104, born 1985-07-15)
    digits   5  1  0  1  0  4  1  9  8  5  0  7  1  5  0  0  3
    products 35 9  0  5  0 16  2  9 48 15  0 63 10 25  0  0  6
    S = 243; 243 mod 11 = 1; (12 - 1) mod 11 = 0 -> "0"

440305200002290010 (Shenzhen Nanshan 440305, born on the leap day 2000-02-29)
    digits   4  4  0  3  0  5  2  0  0  0  0  2  2  9  0  0  1
    products 28 36 0 15  0 20  4  0  0  0  0 18 20 45  0  0  2
    S = 188; 188 mod 11 = 1; (12 - 1) mod 11 = 0 -> "0"

110105194912310011 (as the first example, sequence 001 instead of 002)
    S = 167 - 2*2 + 1*2 = 165; 165 mod 11 = 0; (12 - 0) mod 11 = 1 -> "1"

All five were also checked with the 18-character "total = 1 (mod 11)" form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.errors import CryptoError, IdentityNumberError
from crypto.pseudonym import (
    PSEUDONYM_PREFIX,
    WEIGHTS,
    check_character,
    normalise_identity_number,
    pseudonym,
    validate_pseudonym,
)

TODAY = date(2026, 6, 1)
SECRET = bytes(range(32))  # 00 01 02 ... 1f

VALID = [
    "11010519491231002X",
    "440301199001010012",
    "510104198507150030",
    "440305200002290010",
    "110105194912310011",
]


def _iso7064_total_is_one(number: str) -> bool:
    """Independent oracle: the full 18-character MOD 11-2 sum is 1 (mod 11)."""
    values = [10 if c == "X" else int(c) for c in number]
    return sum(v << (17 - i) for i, v in enumerate(values)) % 11 == 1


def test_weights() -> None:
    assert WEIGHTS == (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@pytest.mark.parametrize("number", VALID)
def test_known_valid_numbers(number: str) -> None:
    assert _iso7064_total_is_one(number)
    assert check_character(number[:17]) == number[17]
    assert normalise_identity_number(number, today=TODAY) == number


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("11010519491231002x", "11010519491231002X"),  # lowercase x
        ("  11010519491231002X\n", "11010519491231002X"),  # surrounding whitespace
        ("\t11010519491231002x ", "11010519491231002X"),
        ("\u3000440301199001010012\u3000", "440301199001010012"),  # ideographic space
    ],
)
def test_normalisation(raw: str, normal: str) -> None:
    assert normalise_identity_number(raw, today=TODAY) == normal


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # 17 characters: the check character was dropped.
        ("11010519491231002", r": length \(expected 18 characters, got 17\)"),
        # 19 characters: a digit too many.
        ("110105194912310020X", r": length \(expected 18 characters, got 19\)"),
        ("", r": length \(expected 18 characters, got 0\)"),
        # Inner space survives stripping; still 18 characters, but not all digits.
        ("1101051949 231002X", r": characters"),
        # X only allowed as the check character.
        ("1101051949123100X2", r": characters"),
        # Y is never a check character.
        ("11010519491231002Y", r": characters"),
        # Full-width digits are not ASCII digits.
        ("１１０１０５１９４９１２３１００２X", r": characters"),
        # Address code 010105 starts with 0 (no such province code).
        ("010105194912310025", r": address code"),
        # 1949-02-30 does not exist.
        ("110105194902300025", r": birth date \(not a calendar date\)"),
        # Month 13.
        ("110105194913010025", r": birth date \(not a calendar date\)"),
        # 1900 was not a leap year, so 1900-02-29 does not exist.
        ("110105190002290025", r": birth date \(not a calendar date\)"),
        # 1899-12-31 is before 1900.
        ("110105189912310025", r": birth date \(before 1900\)"),
        # Born 2030-01-01, after TODAY (2026-06-01); check character valid (see below).
        ("440301203001010011", r": birth date \(in the future\)"),
        # The standard example with its last character changed: S = 167 gives X, not 1.
        ("110105194912310021", r": check character \(expected X, got 1\)"),
        # 440301199001010012 with the wrong check: S = 164 gives 2, not 3.
        ("440301199001010013", r": check character \(expected 2, got 3\)"),
        # Sequence 001 (S = 165) needs check 1; X is wrong.
        ("11010519491231001X", r": check character \(expected 1, got X\)"),
        # Adjacent transposition 02 -> 20 at positions 16-17: S changes by
        # (2-0)*4 + (0-2)*2 = +4, so 167 + 4 = 171; 171 mod 11 = 6; (12 - 6) mod 11 = 6.
        ("11010519491231020X", r": check character \(expected 6, got X\)"),
    ],
)
def test_known_invalid_numbers(raw: str, message: str) -> None:
    with pytest.raises(IdentityNumberError, match=r"^invalid resident identity number" + message):
        normalise_identity_number(raw, today=TODAY)


def test_error_messages_never_contain_the_number() -> None:
    for raw in ["110105194912310021", "110105194902300025", "11010519491231002"]:
        with pytest.raises(IdentityNumberError) as info:
            normalise_identity_number(raw, today=TODAY)
        assert raw[:14] not in str(info.value)
        assert info.value.code == "identity_number_invalid"


def test_non_string_is_rejected() -> None:
    with pytest.raises(IdentityNumberError, match="characters"):
        normalise_identity_number(11010519491231002, today=TODAY)  # type: ignore[arg-type]


def test_birth_date_is_judged_against_the_injected_today() -> None:
    # digits 4 4 0 3 0 1 2 0 3 0 0 1 0 1 0 0 1 -> products 28 36 0 15 0 4 4 0 18 0 0 9 0 5 0 0 2
    # S = 121; 121 mod 11 = 0; (12 - 0) mod 11 = 1 -> "1"
    born_2030 = "440301203001010011"
    assert _iso7064_total_is_one(born_2030)
    assert normalise_identity_number(born_2030, today=date(2030, 1, 1)) == born_2030
    with pytest.raises(IdentityNumberError, match="in the future"):
        normalise_identity_number(born_2030, today=date(2029, 12, 31))


@given(st.sampled_from(VALID), st.integers(min_value=0, max_value=16), st.integers(0, 9))
def test_any_single_digit_change_is_rejected(number: str, position: int, digit: int) -> None:
    # MOD 11-2 detects every single-character substitution.
    if int(number[position]) == digit:
        return
    changed = number[:position] + str(digit) + number[position + 1 :]
    with pytest.raises(IdentityNumberError):
        normalise_identity_number(changed, today=TODAY)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_check_character_agrees_with_the_independent_oracle(first17: str) -> None:
    assert _iso7064_total_is_one(first17 + check_character(first17))


# --- pseudonyms ------------------------------------------------------------------------


def test_pseudonym_known_answer() -> None:
    # Derived independently with the standard library:
    #   mac = hmac.new(bytes(range(32)),
    #                  b"accessledger/pseudonym/v1\x00" + b"11010519491231002X",
    #                  hashlib.sha256).digest()
    #   = d3c814e2f6a1cae5b87dee9061001a93ffec3f03050a2b2b09722fbcbaead25c
    #   "ps1:" + base64.b32encode(mac).decode().rstrip("=").lower()
    assert pseudonym("11010519491231002X", SECRET, today=TODAY) == (
        "ps1:2pebjyxwuhfolod552igcaa2sp76ypydaufcwkyjoix3zoxk2joa"
    )
    # Same derivation for 440301199001010012:
    #   mac = dc0fad82fbc621f093537619608fbb0331a6b9e3ec447b102a0110a99eeee4ec
    assert pseudonym("440301199001010012", SECRET, today=TODAY) == (
        "ps1:3qh23ax3yyq7be2toymwbd53amy2nopd5rchwebkaeikthxo4twa"
    )


def test_pseudonym_matches_its_documented_construction() -> None:
    secret = bytes.fromhex("7f" * 40)
    mac = hmac.new(
        secret, b"accessledger/pseudonym/v1\x00510104198507150030", hashlib.sha256
    ).digest()
    expected = "ps1:" + base64.b32encode(mac).decode().rstrip("=").lower()
    assert pseudonym("510104198507150030", secret, today=TODAY) == expected


def test_pseudonym_uses_the_normal_form() -> None:
    canonical = pseudonym("11010519491231002X", SECRET, today=TODAY)
    assert pseudonym(" 11010519491231002x\n", SECRET, today=TODAY) == canonical


def test_pseudonym_depends_on_secret_and_number() -> None:
    base = pseudonym("11010519491231002X", SECRET, today=TODAY)
    assert pseudonym("11010519491231002X", SECRET[::-1], today=TODAY) != base
    assert pseudonym("110105194912310011", SECRET, today=TODAY) != base


def test_pseudonym_shape() -> None:
    value = pseudonym("440305200002290010", SECRET, today=TODAY)
    assert value.startswith(PSEUDONYM_PREFIX)
    assert len(value) == 56
    assert validate_pseudonym(value) == value
    assert "440305" not in value


@pytest.mark.parametrize("secret", [b"", b"s" * 31, "s" * 32])
def test_pseudonym_requires_a_long_secret(secret: bytes) -> None:
    with pytest.raises(CryptoError, match="at least 32 bytes") as info:
        pseudonym("11010519491231002X", secret, today=TODAY)
    assert info.value.code == "consortium_secret_invalid"


def test_pseudonym_rejects_invalid_numbers() -> None:
    with pytest.raises(IdentityNumberError, match="check character"):
        pseudonym("110105194912310021", SECRET, today=TODAY)


@pytest.mark.parametrize(
    "text",
    [
        "11010519491231002X",  # a raw identity number must never pass as a pseudonym
        "ps1:" + "A" * 52,
        "ps1:" + "a" * 51,
        "ps2:" + "a" * 52,
        "ps1:" + "a" * 52 + "\n",
    ],
)
def test_validate_pseudonym_rejects(text: str) -> None:
    with pytest.raises(CryptoError) as info:
        validate_pseudonym(text)
    assert info.value.code == "pseudonym_invalid"
