"""RFC 8785 canonical JSON."""

from __future__ import annotations

import hashlib
import math

import pytest

from policies.canonical import CanonicalJSONError, canonical_json, canonical_sha256


def test_members_sorted_and_no_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "x"], "c": {}}) == (
        b'{"a":[true,null,"x"],"b":1,"c":{}}'
    )


def test_keys_sorted_by_utf16_code_units() -> None:
    # The key set of RFC 8785 section 3.2.3; U+1F600 (a surrogate pair in
    # UTF-16) sorts before U+FB33, unlike code-point order.
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    encoded = canonical_json(dict.fromkeys(keys, 0)).decode("utf-8")
    order = [encoded.index(f'"{k}"' if k != "\r" else '"\\r"') for k in keys]
    expected = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert [k for _, k in sorted(zip(order, keys, strict=True))] == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e30, "1e+30"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (-0.0, "0"),
        (333333333.33333329, "333333333.3333333"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (-1.5, "-1.5"),
        (5e-324, "5e-324"),
    ],
)
def test_numbers_in_ecmascript_form(value: float, text: str) -> None:
    assert canonical_json(value) == text.encode()


def test_string_escaping_matches_json_stringify() -> None:
    assert canonical_json('a"b\\c\n\u0001\u007f€') == '"a\\"b\\\\c\\n\\u0001\u007f€"'.encode()


def test_sha256_is_of_canonical_bytes() -> None:
    value = {"z": [1, 2], "a": "居住证"}
    assert canonical_sha256(value) == hashlib.sha256(canonical_json(value)).hexdigest()
    assert canonical_sha256(value) == canonical_sha256({"a": "居住证", "z": (1, 2)})


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, 2**53, {1: "x"}, {"a": {1, 2}}, b"bytes", "\ud800"],
)
def test_non_json_values_rejected(bad: object) -> None:
    with pytest.raises(CanonicalJSONError):
        canonical_json(bad)
