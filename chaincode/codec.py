"""Argument parsing and value formats shared by every contract function.

Arguments arrive as UTF-8 JSON text. They are parsed strictly -- duplicate
member names, floats, NaN and oversized inputs are refused -- so that the
value the contract acts on has exactly one reading, and re-encoding it with
RFC 8785 (:func:`policies.canonical.canonical_json`) gives the bytes its
signer signed. Everything the contract writes to state or returns is
canonical JSON too: every endorser produces byte-identical values (I4).

Times on the ledger are UTC ISO 8601 strings with exactly six fractional
digits and a ``Z`` (``2026-11-29T12:00:00.000000Z``): fixed width, so they
sort as text inside composite keys. The only clock is the transaction
timestamp from the proposal's channel header.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Set
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from chaincode.errors import InvalidArgument
from crypto.errors import CryptoError
from crypto.pseudonym import validate_pseudonym
from policies.canonical import canonical_json

#: Largest argument most functions accept.
MAX_ARGUMENT_BYTES: Final = 256 * 1024
#: Largest argument of ``InstallPolicy`` and ``InitLedger`` (a bundle, CA certificates).
MAX_LARGE_ARGUMENT_BYTES: Final = 8 * 1024 * 1024

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$")
HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
SNAKE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ORG = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
REGION = re.compile(r"^[1-8][0-9]{5}$")


def dumps(value: Any) -> bytes:
    """Canonical JSON (RFC 8785) bytes of ``value``; the only encoder the contract uses.

    A :class:`Listing` is already encoded and passes through as it is.
    """
    if isinstance(value, Listing):
        return value.encoded
    return canonical_json(value)


class Listing:
    """A query answer whose list of stored objects goes out as the stored bytes.

    Every object the contract stores is canonical JSON it wrote itself
    (:func:`dumps`), so a page of them can be answered by splicing the
    stored values into the answer instead of parsing each one and encoding
    the whole page again: the bytes are the same, at a fraction of the cost
    (the citizen's and the auditors' event lists are the busiest queries).
    ``fields`` are the answer's other members; ``items`` goes out under
    ``member``. The members are written in RFC 8785 order, so the answer is
    exactly ``dumps`` of the decoded page.
    """

    __slots__ = ("encoded",)

    def __init__(self, fields: Mapping[str, Any], member: str, items: list[bytes]) -> None:
        if member in fields:
            raise ValueError(f"{member!r} is both a field and the listed member")
        for item in items:
            if item[:1] != b"{" or item[-1:] != b"}":
                raise ValueError("a listed item is not a stored JSON object")
        members = {key: canonical_json(value) for key, value in fields.items()}
        members[member] = b"[" + b",".join(items) + b"]"
        # RFC 8785 orders members by UTF-16 code units; ASCII member names sort as text.
        if not all(key.isascii() for key in members):
            raise ValueError("listing member names must be ASCII")
        self.encoded = (
            b"{"
            + b",".join(canonical_json(key) + b":" + members[key] for key in sorted(members))
            + b"}"
        )


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidArgument(f"duplicate member {key!r} in the JSON argument")
        result[key] = value
    return result


def _reject_float(text: str) -> Any:
    raise InvalidArgument("numbers in arguments must be integers")


def _reject_constant(text: str) -> Any:
    raise InvalidArgument(f"{text} is not valid JSON")


def parse_object(
    raw: str | bytes, *, what: str, max_bytes: int = MAX_ARGUMENT_BYTES
) -> dict[str, Any]:
    """Parse one JSON object argument strictly; raise :class:`InvalidArgument` otherwise."""
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise InvalidArgument(f"{what} is larger than {max_bytes} bytes")
    try:
        value = json.loads(
            data,
            object_pairs_hook=_reject_duplicates,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidArgument(f"{what} is not valid UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value


def check_fields(
    data: Mapping[str, Any], what: str, required: Set[str], optional: Set[str] = frozenset()
) -> None:
    """Raise unless ``data`` has every ``required`` member and nothing unknown."""
    missing = sorted(required - set(data))
    unknown = sorted(set(data) - required - optional)
    if missing:
        raise InvalidArgument(f"{what} lacks {', '.join(missing)}")
    if unknown:
        raise InvalidArgument(f"{what} has unknown member(s) {', '.join(unknown)}")


def text(
    data: Mapping[str, Any],
    name: str,
    pattern: re.Pattern[str] | None = None,
    *,
    what: str = "argument",
    max_length: int = 128,
) -> str:
    """The string member ``name``, checked against ``pattern``."""
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InvalidArgument(
            f"{what}.{name} must be a non-empty string of at most {max_length} characters"
        )
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidArgument(f"{what}.{name} has an invalid format (expected {pattern.pattern})")
    return value


def optional_text(
    data: Mapping[str, Any],
    name: str,
    pattern: re.Pattern[str] | None = None,
    *,
    what: str = "argument",
    max_length: int = 128,
) -> str | None:
    """Like :func:`text`, but a missing member or ``null`` gives ``None``."""
    if data.get(name) is None:
        return None
    return text(data, name, pattern, what=what, max_length=max_length)


def integer(
    data: Mapping[str, Any],
    name: str,
    *,
    what: str = "argument",
    low: int = 0,
    high: int = 2**53 - 1,
) -> int:
    """The integer member ``name`` within ``[low, high]`` (booleans are not integers)."""
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(f"{what}.{name} must be an integer between {low} and {high}")
    return value


def boolean(data: Mapping[str, Any], name: str, *, what: str = "argument") -> bool:
    """The boolean member ``name`` (``False`` when absent)."""
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"{what}.{name} must be true or false")
    return value


def string_list(
    data: Mapping[str, Any],
    name: str,
    pattern: re.Pattern[str],
    *,
    what: str = "argument",
    max_items: int = 100,
) -> list[str]:
    """A non-empty list of distinct strings matching ``pattern``, in the given order."""
    value = data.get(name)
    if not isinstance(value, list) or not value or len(value) > max_items:
        raise InvalidArgument(f"{what}.{name} must be a list of 1 to {max_items} strings")
    for item in value:
        if not isinstance(item, str) or not pattern.fullmatch(item):
            raise InvalidArgument(f"{what}.{name} items must match {pattern.pattern}")
    if len(set(value)) != len(value):
        raise InvalidArgument(f"{what}.{name} has duplicate items")
    return list(value)


def subject(data: Mapping[str, Any], name: str = "subject", *, what: str = "argument") -> str:
    """A subject pseudonym; a resident identity number or anything else is refused (I1)."""
    value = data.get(name)
    try:
        return validate_pseudonym(value)  # type: ignore[arg-type]
    except CryptoError:
        raise InvalidArgument(
            f"{what}.{name} must be a subject pseudonym (ps1:...), never an identity number",
            code="subject_not_pseudonym",
        ) from None


# -- time ------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC: fixed width, sortable as text.

    ``isoformat`` rather than ``strftime("%Y")``, which on glibc drops the
    leading zeros of years before 1000 and would break both the fixed width
    and the text order.
    """
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def parse_time(value: Any, *, what: str) -> datetime:
    """Parse an ISO 8601 UTC timestamp ending in ``Z`` (up to nanoseconds; kept to microseconds)."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise InvalidArgument(f"{what} must be an ISO 8601 UTC time like 2026-01-31T08:00:00Z")
    main, _, fraction = value[:-1].partition(".")
    try:
        moment = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidArgument(f"{what} is not a calendar date and time") from None
    micros = int((fraction + "000000")[:6]) if fraction else 0
    return moment + timedelta(microseconds=micros)


def time_from_timestamp(timestamp: Any) -> datetime:
    """A ``google.protobuf.Timestamp`` as an aware UTC datetime (microsecond precision)."""
    seconds = int(getattr(timestamp, "seconds", 0))
    nanos = int(getattr(timestamp, "nanos", 0))
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
