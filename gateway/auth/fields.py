"""Fast parsing of the structured-field dictionaries a signed request carries, in canonical form.

Every signed request has three RFC 8941 dictionaries: ``Signature-Input``,
``Signature`` and ``Content-Digest``. The general parser
(:mod:`http_sfv`) walks them character by character in Python, which under
load costs more than the ECDSA verification they lead to. Clients (the SDK,
any RFC 9421 library) send them in the canonical serialisation, so
:func:`parse_dictionary` recognises exactly that shape with regular
expressions:

* members ``key=value`` separated by a comma and optional spaces or tabs,
  each key lowercase and used once;
* a value that is either a Byte Sequence without parameters (``:base64:``)
  or an Inner List of sf-strings without parameters followed by parameters
  whose values are sf-strings or sf-integers, every parameter key once,
  written with single spaces and no optional whitespace.

Strings must not contain ``"`` or ``\\`` (no escapes) and integers have no
leading zeros, so the member text of an Inner List *is* its strict
serialisation -- the ``@signature-params`` line of the signature base --
without re-serialising it. Anything else (tokens, booleans, decimals, extra
whitespace, uppercase or repeated keys, escapes) returns ``None`` and the
caller parses with :mod:`http_sfv` as before, so the fast path accepts a
subset of what the general parser accepts and yields the same values for it
(``tests/gateway/auth/test_fields.py`` checks that against :mod:`http_sfv`).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

_KEY = r"[a-z*][a-z0-9_\-.*]*"
_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'
_INTEGER = r"(?:0|-?[1-9][0-9]{0,14})"
_INNER_LIST = rf"\((?:{_STRING}(?: {_STRING})*)?\)(?:;{_KEY}=(?:{_STRING}|{_INTEGER}))*"
_BYTES = r":[A-Za-z0-9+/]*={0,2}:"

_MEMBER = re.compile(rf"({_KEY})=(?:({_INNER_LIST})|({_BYTES}))")
_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")
_ITEMS = re.compile(rf"\((?:{_STRING}(?: {_STRING})*)?\)")
_ITEM = re.compile(_STRING)
_PARAM = re.compile(rf";({_KEY})=({_STRING}|{_INTEGER})")


@dataclass(frozen=True)
class InnerListMember:
    """An Inner List of sf-strings with sf-string or sf-integer parameters."""

    #: The items' string values, in order.
    items: tuple[str, ...]
    #: The parameters, in order (``str`` for sf-strings, ``int`` for sf-integers).
    params: dict[str, int | str]
    #: The member value exactly as sent, which is its strict serialisation.
    text: str


Member = InnerListMember | bytes


def _inner_list(text: str) -> InnerListMember | None:
    # The text matched the Inner List grammar: the items end at the first ")" outside a
    # string, and consecutive matches walk the items and then the parameters.
    listed = _ITEMS.match(text)
    if listed is None:  # pragma: no cover - guaranteed by _MEMBER
        return None
    items = tuple(match.group()[1:-1] for match in _ITEM.finditer(text, 1, listed.end() - 1))
    params: dict[str, int | str] = {}
    for match in _PARAM.finditer(text, listed.end()):
        key, raw = match.group(1), match.group(2)
        if key in params:
            return None  # repeated: the general parser keeps the last one
        params[key] = raw[1:-1] if raw.startswith('"') else int(raw)
    return InnerListMember(items, params, text)


def parse_dictionary(value: str) -> dict[str, Member] | None:
    """The members of a canonical dictionary field value, or ``None`` to use :mod:`http_sfv`.

    ``None`` does not mean the value is invalid, only that it is not in the
    shape this parser recognises (see the module docstring).
    """
    members: dict[str, Member] = {}
    position, end = 0, len(value)
    while True:
        match = _MEMBER.match(value, position)
        if match is None:
            return None
        key, inner, binary = match.group(1), match.group(2), match.group(3)
        if key in members:
            return None
        if inner is not None:
            parsed = _inner_list(inner)
            if parsed is None:
                return None
            members[key] = parsed
        else:
            try:
                members[key] = base64.standard_b64decode(binary[1:-1])
            except binascii.Error:
                return None
        position = match.end()
        if position == end:
            return members
        separator = _SEPARATOR.match(value, position)
        if separator is None or separator.end() == end:
            return None
        position = separator.end()
