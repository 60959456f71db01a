"""The canonical fast path for structured-field dictionaries agrees with http_sfv.

``parse_dictionary`` may decline any value (``None``: the verifier then uses
http_sfv), but whatever it accepts http_sfv must accept too, with the same
members, the same item and parameter values and types, and an Inner List
text equal to http_sfv's strict serialisation (it becomes the
``@signature-params`` line of the signature base).
"""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.identity import Identity
from gateway.auth.fields import InnerListMember, parse_dictionary
from tests.gateway.auth.conftest import signed_request

SDK_INPUT = (
    'accessledger=("@method" "@path" "@query" "content-digest" "content-type");'
    'created=1764400000;keyid="' + "ab" * 32 + '";alg="ecdsa-p256-sha256";'
    'nonce="AAAAAAAAAAAAAAAAAAAAAA";tag="accessledger"'
)


def _reference(value: str) -> Dictionary | None:
    field = Dictionary()
    try:
        field.parse(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return field


def assert_agrees(value: str) -> bool:
    """Check the fast result against http_sfv; True if the fast path took the value."""
    fast = parse_dictionary(value)
    if fast is None:
        return False
    reference = _reference(value)
    assert reference is not None, f"fast path accepted what http_sfv refuses: {value!r}"
    assert list(fast) == list(reference)
    for key, member in fast.items():
        expected = reference[key]
        if isinstance(member, bytes):
            assert isinstance(expected, Item)
            assert type(expected.value) is bytes
            assert member == expected.value
            assert not expected.params
            continue
        assert isinstance(member, InnerListMember)
        assert isinstance(expected, InnerList)
        assert [type(item.value) for item in expected] == [str] * len(member.items)
        assert [item.value for item in expected] == list(member.items)
        assert all(not item.params for item in expected)
        assert dict(expected.params) == member.params
        assert {k: type(v) for k, v in expected.params.items()} == {
            k: type(v) for k, v in member.params.items()
        }
        assert str(expected) == member.text
    return True


def test_the_sdk_shape_takes_the_fast_path() -> None:
    members = parse_dictionary(SDK_INPUT)
    assert members is not None
    inner = members["accessledger"]
    assert isinstance(inner, InnerListMember)
    assert inner.items == ("@method", "@path", "@query", "content-digest", "content-type")
    assert inner.params["created"] == 1764400000
    assert inner.params["tag"] == "accessledger"
    assert inner.text == SDK_INPUT.removeprefix("accessledger=")
    assert assert_agrees(SDK_INPUT)


def test_a_real_signed_request_takes_the_fast_path(officer: Identity, now: datetime) -> None:
    request = signed_request(officer, now)
    for name in ("signature-input", "signature", "content-digest"):
        value = request.header(name)
        assert value is not None
        assert assert_agrees(value), name


@pytest.mark.parametrize(
    "value",
    [
        'sig=("a" "b");created=1',
        "sig=();created=0;n=-5",
        "sig=:AAEC:",
        "sha-256=:" + base64.b64encode(b"x" * 32).decode() + ":, sha-512=:AAAA:",
        'a=("x)y" "(");k="a;b=1)"',
        'a=("");k=""',
        "a=(),\tb=()",
        "*a.b-c_d=()",
        'a=("x");b="1";c=123456789012345',
        'sig=("a")',
    ],
)
def test_canonical_values_agree(value: str) -> None:
    assert assert_agrees(value)


@pytest.mark.parametrize(
    "value",
    [
        'sig=( "a")',  # optional whitespace inside the list: not the canonical text
        'sig=("a"  "b")',
        'sig=("a");created=01',  # leading zero: serialises differently
        'sig=("a");created=-0',
        'sig=("a");created=1234567890123456',  # 16 digits: not an sf-integer
        'sig=("a");alg=ecdsa',  # a token
        'sig=("a");flag',  # a boolean
        'sig=("a");d=1.5',  # a decimal
        'sig=("a");k="x";k="y"',  # repeated parameter: the last one wins in http_sfv
        'sig=("a"), sig=("b")',  # repeated member
        'Sig=("a")',  # uppercase key
        'sig=("a\\"b")',  # an escape
        'sig=("a";p=1)',  # item parameters
        'sig=("a"),',  # trailing comma
        "sig=:AAE:",  # bad padding
        "sig=:AAEC:;p=1",  # parameters on a byte sequence
        "sig=1",  # a bare integer member
        "",
    ],
)
def test_other_shapes_are_left_to_http_sfv(value: str) -> None:
    assert parse_dictionary(value) is None


_PIECES = [
    "sig",
    "a",
    "*",
    "=",
    "(",
    ")",
    " ",
    "  ",
    "\t",
    ",",
    ";",
    '"',
    '"x"',
    '"@method"',
    '" ; )"',
    "\\",
    "created",
    "1",
    "0",
    "-",
    "01",
    "123456789012345",
    "1234567890123456",
    ".5",
    ":",
    ":AAEC:",
    ":AA==:",
    ":AAE:",
    "=",
    "tok",
    "?1",
    "A",
]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=24).map("".join))
def test_random_values_never_disagree(value: str) -> None:
    assert_agrees(value)


_string = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'),
    max_size=12,
)
_key = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,6}", fullmatch=True)
_param_value = st.one_of(_string.map(lambda s: f'"{s}"'), st.integers(-(10**15) + 1, 10**15 - 1))


@settings(max_examples=1500, deadline=None)
@given(
    st.dictionaries(
        _key,
        st.one_of(
            st.binary(max_size=40).map(lambda b: ":" + base64.b64encode(b).decode() + ":"),
            st.tuples(
                st.lists(_string, max_size=5),
                st.dictionaries(_key, _param_value, max_size=5),
            ).map(
                lambda t: (
                    "("
                    + " ".join(f'"{s}"' for s in t[0])
                    + ")"
                    + "".join(f";{k}={v}" for k, v in t[1].items())
                )
            ),
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([",", ", ", " ,\t", ",  "]),
)
def test_generated_canonical_dictionaries_take_the_fast_path(
    members: dict[str, str], separator: str
) -> None:
    value = separator.join(f"{k}={v}" for k, v in members.items())
    assert assert_agrees(value)
