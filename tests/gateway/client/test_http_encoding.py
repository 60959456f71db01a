"""A request body that cannot go on the wire as UTF-8 JSON is the SDK's typed error.

:func:`gateway.client.http.prepare` serialises every body; a lone surrogate,
a NaN or a structure nested past the encoder's depth must raise
:class:`InvalidRequest` naming where the problem is, before anything is sent.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest

from crypto.consortium import Consortium
from gateway.client import ClientError, InvalidRequest
from gateway.client.http import Call, prepare

BASE = "http://gateway.example:8000"


def _prepare(consortium: Consortium, demo_now: datetime, body: Any) -> bytes:
    officer = consortium.identity("officer.education.sz1")
    call = Call("POST", "/v1/records", body=body)
    return prepare(call, base_url=BASE, identity=officer, now=demo_now).content


def _refused(consortium: Consortium, demo_now: datetime, body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        _prepare(consortium, demo_now, body)
    assert isinstance(caught.value, ClientError)
    assert caught.value.code == "request_invalid"
    assert caught.value.status is None  # refused locally: no answer from the gateway
    assert "POST /v1/records" in caught.value.message
    return caught.value


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"fields": {"holder_name": "\ud800"}}, "fields.holder_name"),
        ({"fields": {"names": ["ok", "x\udcff"]}}, "fields.names[1]"),
        ({"fields": {"\udc80key": "v"}}, "a member name in fields"),
    ],
)
def test_a_lone_surrogate_is_named_by_its_place(
    consortium: Consortium, demo_now: datetime, body: Any, where: str
) -> None:
    error = _refused(consortium, demo_now, body)
    assert where in error.message
    assert "surrogate" in error.message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(
    consortium: Consortium, demo_now: datetime, value: float
) -> None:
    error = _refused(consortium, demo_now, {"fields": {"amount": value}})
    assert "not JSON" in error.message


def test_a_body_nested_too_deep_is_refused(consortium: Consortium, demo_now: datetime) -> None:
    body: Any = "leaf"
    for _ in range(100_000):
        body = [body]
    error = _refused(consortium, demo_now, {"fields": {"deep": body}})
    assert "nested too deeply" in error.message


def test_a_body_with_a_value_json_cannot_hold_is_refused(
    consortium: Consortium, demo_now: datetime
) -> None:
    error = _refused(consortium, demo_now, {"fields": {"when": demo_now}})
    assert "datetime" in error.message


def test_ordinary_text_is_still_sent_as_utf8(consortium: Consortium, demo_now: datetime) -> None:
    content = _prepare(consortium, demo_now, {"fields": {"holder_name": "张三 😀"}})
    assert content == '{"fields":{"holder_name":"张三 😀"}}'.encode()
