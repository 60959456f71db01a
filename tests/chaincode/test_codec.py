"""``chaincode.codec.Listing``: a page of stored objects answered as the stored bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaincode.codec import Listing, dumps, format_time, parse_time
from policies.canonical import canonical_json

_TEXT = st.text(max_size=12)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=10,
)
_OBJECTS = st.dictionaries(_TEXT, _VALUES, max_size=4)
_FIELD_NAMES = st.sampled_from(["subject", "truncated", "org", "from", "to", "msp_id", "a", "z"])


@given(
    fields=st.dictionaries(_FIELD_NAMES, _VALUES, max_size=4),
    objects=st.lists(_OBJECTS, max_size=4),
)
def test_a_listing_is_the_canonical_json_of_the_decoded_page(
    fields: dict[str, object], objects: list[dict[str, object]]
) -> None:
    # Derivation: what dumps() gave before the listing existed, for the same page.
    stored = [canonical_json(obj) for obj in objects]
    listing = dumps(Listing(fields, "events", stored))
    assert listing == canonical_json({**fields, "events": objects})
    assert json.loads(listing)["events"] == objects


def test_a_listing_refuses_what_it_cannot_splice() -> None:
    with pytest.raises(ValueError, match="not a stored JSON object"):
        Listing({}, "events", [b"[1]"])
    with pytest.raises(ValueError, match="not a stored JSON object"):
        Listing({}, "events", [b""])
    with pytest.raises(ValueError, match="both a field"):
        Listing({"events": []}, "events", [])
    with pytest.raises(ValueError, match="ASCII"):
        Listing({"é": 1}, "events", [])


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 29, 8, 0, tzinfo=UTC), "2026-11-29T08:00:00.000000Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "0999-12-31T23:59:59.999999Z"),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_format_time_is_fixed_width_for_every_year(moment: datetime, expected: str) -> None:
    # glibc's strftime("%Y") writes year 1 as "1": the text would neither parse back nor sort.
    assert format_time(moment) == expected
    assert format_time(parse_time(expected, what="t")) == expected


def test_format_time_sorts_as_text_across_the_year_1000() -> None:
    moments = [datetime(year, 6, 1, tzinfo=UTC) for year in (5, 999, 1000, 2026)]
    assert sorted(format_time(m) for m in moments) == [format_time(m) for m in moments]
