"""Resident identity numbers (GB 11643-1999) and the subject pseudonyms derived from them.

A person appears on the ledger only as a pseudonym (DESIGN.md I1): an HMAC of
their normalised 18-character resident identity number under the consortium
secret. Validation comes first, so that a typo cannot silently create a second
pseudonym for the same person.

GB 11643-1999 layout (1-based positions)::

    1-6    address code (administrative division; never starts with 0)
    7-14   birth date, YYYYMMDD
    15-17  sequence code (odd for men, even for women -- not checked)
    18     check character, ISO 7064 MOD 11-2 over positions 1-17

The check character: weight position i (1..17) by ``2**(18-i) mod 11``
(7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), sum the products, and the
check value is ``(12 - sum mod 11) mod 11``, written ``X`` when it is 10.

Pseudonym encoding (version 1, stable)::

    "ps1:" + lowercase base32 (RFC 4648, no padding) of
    HMAC-SHA256(key = consortium secret,
                msg = b"accessledger/pseudonym/v1" || 0x00 || normalised number (ASCII))

which is 4 + 52 = 56 characters. Error messages never echo the number itself:
it is personal data and error text ends up in logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import date

from crypto.errors import CryptoError, IdentityNumberError

#: ISO 7064 MOD 11-2 weights of positions 1..17: 2**(18-i) mod 11.
WEIGHTS: tuple[int, ...] = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARACTERS = "10X98765432"  # indexed by (sum mod 11); equals (12 - sum) mod 11

#: Version prefix of every pseudonym this module produces.
PSEUDONYM_PREFIX = "ps1:"
PSEUDONYM_DOMAIN = b"accessledger/pseudonym/v1"
MIN_SECRET_SIZE = 32

_EARLIEST_BIRTH_YEAR = 1900
_DIGITS = frozenset("0123456789")
_PSEUDONYM_RE = re.compile(r"ps1:[a-z2-7]{52}")


def _fail(check: str, detail: str = "") -> IdentityNumberError:
    suffix = f" ({detail})" if detail else ""
    return IdentityNumberError(f"invalid resident identity number: {check}{suffix}")


def check_character(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character for 17 ASCII digits."""
    if len(first17) != 17 or not set(first17) <= _DIGITS:
        raise _fail("characters", "the check character is computed over 17 digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, WEIGHTS, strict=True))
    return _CHECK_CHARACTERS[total % 11]


def normalise_identity_number(raw: str, *, today: date | None = None) -> str:
    """Validate a GB 11643 resident identity number and return its normal form.

    Surrounding whitespace is stripped and a lowercase ``x`` check character
    becomes ``X``. Raises :class:`IdentityNumberError` naming the failed check:
    ``length``, ``characters``, ``address code``, ``birth date`` or
    ``check character (expected X, got Y)``. ``today`` (default: the local date)
    bounds the birth date, so validation is replayable.
    """
    if not isinstance(raw, str):
        raise _fail("characters", "expected a string")
    number = raw.strip()
    if len(number) != 18:
        raise _fail("length", f"expected 18 characters, got {len(number)}")
    number = number[:17] + number[17].upper()
    if not set(number[:17]) <= _DIGITS or not (number[17] in _DIGITS or number[17] == "X"):
        raise _fail("characters", "expected 17 digits followed by a digit or X")
    if number[0] == "0":
        raise _fail("address code", "the administrative division code cannot start with 0")
    _check_birth_date(number[6:14], today if today is not None else date.today())
    expected = check_character(number[:17])
    if number[17] != expected:
        raise _fail("check character", f"expected {expected}, got {number[17]}")
    return number


def _check_birth_date(yyyymmdd: str, today: date) -> None:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        raise _fail("birth date", "not a calendar date") from None
    if born.year < _EARLIEST_BIRTH_YEAR:
        raise _fail("birth date", f"before {_EARLIEST_BIRTH_YEAR}")
    if born > today:
        raise _fail("birth date", "in the future")


def pseudonym(identity_number: str, secret: bytes, *, today: date | None = None) -> str:
    """Return the stable subject pseudonym of a resident identity number.

    The number is validated and normalised first, so ``" 11010519491231002x"``
    and ``"11010519491231002X"`` have the same pseudonym. ``secret`` is the
    consortium secret (at least 32 bytes).
    """
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_SIZE:
        raise CryptoError(
            f"the consortium secret must be at least {MIN_SECRET_SIZE} bytes",
            code="consortium_secret_invalid",
        )
    number = normalise_identity_number(identity_number, today=today)
    mac = hmac.new(secret, PSEUDONYM_DOMAIN + b"\x00" + number.encode("ascii"), hashlib.sha256)
    encoded = base64.b32encode(mac.digest()).decode("ascii").rstrip("=").lower()
    return PSEUDONYM_PREFIX + encoded


def validate_pseudonym(text: str) -> str:
    """Return ``text`` if it has the shape of a version-1 pseudonym, else raise.

    Lets the ledger side refuse a raw identity number (or anything else) where
    a pseudonym belongs, without knowing the secret.
    """
    if not isinstance(text, str) or _PSEUDONYM_RE.fullmatch(text) is None:
        raise CryptoError(
            "not a subject pseudonym (expected ps1:<52 base32>)", code="pseudonym_invalid"
        )
    return text
