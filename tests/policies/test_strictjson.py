"""policies.strictjson: JSON as json.loads reads it, minus repeated member names."""

from __future__ import annotations

import json

import pytest

from policies.strictjson import DuplicateMember, loads_strict


def test_loads_strict_names_the_path_through_arrays() -> None:
    with pytest.raises(DuplicateMember) as caught:
        loads_strict(b'[{"a": 1}, {"b": [0, {"c": {"d": 1, "d": 2}}]}]')
    assert caught.value.path == (1, "b", 1, "c", "d")
    assert loads_strict('{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}') == {
        "a": {"a": 1},
        "b": [{"a": 2}, {"a": 3}],
    }
    with pytest.raises(json.JSONDecodeError):
        loads_strict(b'{"a": ')


def test_a_repeated_top_level_member_is_named() -> None:
    with pytest.raises(DuplicateMember) as caught:
        loads_strict('{"record_type": "a", "fields": {}, "record_type": "b"}')
    assert caught.value.path == ("record_type",)


def test_parse_constant_sees_nan_and_infinity() -> None:
    def refuse(constant: str) -> float:
        raise ValueError(f"{constant} is not JSON")

    assert loads_strict('{"x": NaN}')["x"] != loads_strict('{"x": NaN}')["x"]  # NaN by default
    with pytest.raises(ValueError, match="Infinity is not JSON"):
        loads_strict('{"x": [1, Infinity]}', parse_constant=refuse)
