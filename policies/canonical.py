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
    if _fast_path_safe(value):
        text = _FAST.encode(value)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CanonicalJSONError("string contains a lone surrogate") from exc
    parts: list[str] = []
    _encode(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJSONError("string contains a lone surrogate") from exc


def canonical_sha256(value: Any) -> str:
    """Return the lowercase hex SHA-256 of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


# For values of only exact str/int/bool/None/list/dict, with safe integers and
# object keys inside the BMP, the C encoder of ``json`` already produces the
# RFC 8785 bytes: strings are escaped as in ``_string``, integers print as
# ``str(int)``, and sorting by code point equals sorting by UTF-16 code units
# when no key holds a supplementary-plane character (those become surrogate
# pairs in UTF-16, which sort below U+E000..U+FFFF). Floats always take the
# exact path: ``repr`` and ECMAScript disagree on exponents and on ``1.0``.
_FAST = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), check_circular=False
)
#: Values visited before giving up on the fast path; bounds the walk of a
#: self-referencing container, which the exact path rejects with RecursionError.
_FAST_PATH_BUDGET = 100_000


def _fast_path_safe(value: Any) -> bool:
    """Whether ``json``'s C encoder gives exactly the RFC 8785 encoding of ``value``."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    budget = _FAST_PATH_BUDGET
    while stack:
        budget -= 1
        if not budget:
            return False  # huge or self-referencing: the exact path decides
        item = pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if -_MAX_SAFE_INTEGER <= item <= _MAX_SAFE_INTEGER:
                continue
            return False
        if kind is dict:
            for key in item:
                if type(key) is not str or not (key.isascii() or _bmp_key(key)):
                    return False
            extend(item.values())
        elif kind is list:
            extend(item)
        else:
            return False
    return True


def _bmp_key(key: str) -> bool:
    # Two UTF-16 bytes per character: no supplementary-plane characters. A lone
    # surrogate fails to encode; the exact path reports it.
    try:
        return len(key.encode("utf-16-le")) == 2 * len(key)
    except UnicodeEncodeError:
        return False


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
        for i, key in enumerate(
            sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        ):
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
