"""Canonical JSON (RFC 8785, JSON Canonicalization Scheme) for everything we hash or sign.

Two parties that hold the same logical value must produce the same bytes, or a
bundle hash computed by one department would not match another's. JCS fixes
that: object members sorted by their UTF-16 code units, no insignificant
whitespace, strings escaped exactly as ECMAScript ``JSON.stringify`` does, and
numbers in ECMAScript's shortest round-trip form.

Only JSON values are accepted (dict with str keys, list/tuple, str, int, float,
bool, None). Integers beyond ±(2**53 - 1) and non-finite floats are rejected:
they have no interoperable JSON representation.
"""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal
from typing import Any

from policies.errors import PolicyError

_MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalJSONError(PolicyError):
    """A value cannot be canonicalised (non-JSON type, unsafe number, lone surrogate)."""

    code = "canonical_json_invalid"


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of ``value``."""
    parts: list[str] = []
    _encode(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJSONError("string contains a lone surrogate") from exc


def canonical_sha256(value: Any) -> str:
    """Return the lowercase hex SHA-256 of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _encode(value: Any, out: list[str]) -> None:
    # bool before int: bool is a subclass of int.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise CanonicalJSONError("integer outside the IEEE-754 safe range")
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalJSONError("object keys must be strings")
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise CanonicalJSONError(f"type {type(value).__name__} is not a JSON value")


def _string(text: str) -> str:
    # json.dumps with ensure_ascii=False escapes exactly the characters
    # JSON.stringify escapes (quote, backslash, C0 controls, with \b\f\n\r\t
    # short forms and lowercase \u00xx otherwise).
    return json.dumps(text, ensure_ascii=False)


def _number(x: float) -> str:
    """Format a float the way ECMAScript's Number::toString does (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(x):
        raise CanonicalJSONError("NaN and Infinity are not JSON numbers")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    dec = Decimal(repr(abs(x))).normalize()
    _, digit_tuple, exponent = dec.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    digits = "".join(str(d) for d in digit_tuple)
    k = len(digits)
    n = k + exponent  # position of the decimal point relative to the digits
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body
