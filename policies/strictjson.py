"""Strict JSON parsing: what ``json.loads`` reads, minus repeated member names.

Python's parser, like most, keeps the last of two members with the same name
(``{"a": 1, "a": 2}`` reads as ``{"a": 2}``), so two readers of the same
bytes can disagree about what they say. The contract's own parser refuses
them (``chaincode.codec``); the gateway (every request body) and the CLI
(payload files) refuse them too, through :func:`loads_strict`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["DuplicateMember", "loads_strict"]


class DuplicateMember(Exception):
    """A JSON object repeats a member name; ``path`` leads from the top to the repeated member."""

    def __init__(self, path: Sequence[str | int]) -> None:
        super().__init__(f"duplicate member {path[-1]!r}" if path else "duplicate member")
        self.path = tuple(path)


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _Found:
    """Stands in for an object with a repeated member while the path to it is rebuilt."""

    __slots__ = ("path",)

    def __init__(self, path: list[str | int]) -> None:
        self.path = path


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Repeated(key)
            seen.add(key)
    return obj


def _found_in(value: Any) -> list[str | int] | None:
    """The path to a :class:`_Found` inside ``value`` (through arrays only), if any."""
    pending: list[tuple[Any, list[str | int]]] = [(value, [])]
    while pending:
        item, prefix = pending.pop()
        if isinstance(item, _Found):
            return prefix + item.path
        if isinstance(item, list):
            pending.extend((child, [*prefix, i]) for i, child in reversed(list(enumerate(item))))
    return None


def _locating(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Found:
    seen: set[str] = set()
    for key, value in pairs:
        inner = _found_in(value)
        if inner is not None:
            return _Found([key, *inner])
        if key in seen:
            return _Found([key])
        seen.add(key)
    return dict(pairs)


def loads_strict(data: bytes | str, *, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """``json.loads(data)``, raising :class:`DuplicateMember` if any object repeats a name.

    Malformed JSON raises what :func:`json.loads` raises, and so does
    ``parse_constant`` (called for ``NaN``/``Infinity``, as by :func:`json.loads`).
    The path of the repeated member is rebuilt by a second parse only once
    one is found.
    """
    try:
        return json.loads(data, object_pairs_hook=_unique, parse_constant=parse_constant)
    except _Repeated as exc:
        key = exc.key
    try:
        path = _found_in(json.loads(data, object_pairs_hook=_locating))
    except RecursionError:
        path = None
    raise DuplicateMember(path or [key])
