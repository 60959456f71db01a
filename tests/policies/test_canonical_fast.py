"""The ``json``-encoder fast path of canonical JSON gives exactly the RFC 8785 bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.canonical import (
    CanonicalJSONError,
    _encode,
    _fast_path_safe,
    canonical_json,
)


def exact(value: Any) -> bytes:
    """The reference RFC 8785 encoder, bypassing the fast path."""
    parts: list[str] = []
    _encode(value, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalJSONError("string contains a lone surrogate") from exc


def outcome(encoder: Any, value: Any) -> tuple[str, bytes | str]:
    """The bytes, or the type of the error (a lone surrogate in a key is not JSON)."""
    try:
        return ("ok", encoder(value))
    except (CanonicalJSONError, UnicodeEncodeError) as exc:
        return ("error", type(exc).__name__)


# Every Unicode code point, lone surrogates and supplementary planes included.
_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
_keys = st.one_of(
    _text,
    st.text(st.sampled_from("aZ\u00e9\u20ac\ufb33\ue000\uffff\U0001f600\U00010000"), max_size=4),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2),
    st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_keys, children, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_fast_path_matches_exact_encoder(value: Any) -> None:
    assert outcome(canonical_json, value) == outcome(exact, value)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=8))
def test_string_objects_encode_as_the_exact_path(value: dict[str, str]) -> None:
    assert outcome(canonical_json, value) == outcome(exact, value)


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, True, None, "x\u2028\n"], "\u00e9": {"z": -(2**53 - 1)}},
        [],
        "text",
        0,
    ],
)
def test_plain_values_are_fast(value: Any) -> None:
    assert _fast_path_safe(value)
    assert canonical_json(value) == exact(value)


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        {"a": [0.5]},
        {"\U0001f600": 1, "\ufb33": 2},  # UTF-16 order differs from code-point order
        {"\ud800": 1},  # lone surrogate key
        2**53,
        (1, 2),
        {1: "int key"},
    ],
)
def test_unsafe_values_take_exact_path(value: Any) -> None:
    assert not _fast_path_safe(value)


def test_supplementary_keys_sorted_by_utf16() -> None:
    value = {"\ufb33": 2, "\U0001f600": 1}
    assert canonical_json(value) == '{"\U0001f600":1,"\ufb33":2}'.encode()


def test_lone_surrogate_value_rejected_on_both_paths() -> None:
    with pytest.raises(CanonicalJSONError):
        canonical_json({"a": "\udc00"})
    with pytest.raises(CanonicalJSONError):
        exact({"a": "\udc00"})


def test_self_reference_is_not_looped_on() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(RecursionError):
        canonical_json(loop)


def test_lone_surrogate_key_is_a_canonical_json_error() -> None:
    # Such a key can arrive from any JSON parser ("\ud800" escapes); it must be
    # refused as bad input, never escape as a bare UnicodeEncodeError.
    with pytest.raises(CanonicalJSONError, match="lone surrogate"):
        canonical_json({"\ud800x": 1, "a": 2})
