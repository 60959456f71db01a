"""Calls are signed exactly as sent and verify at the gateway; answers are interpreted."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from crypto.consortium import Consortium
from gateway.auth import (
    DigestMismatchError,
    HttpRequest,
    MemoryNonceCache,
    TrustStore,
    verify_request,
)
from gateway.client import GatewayFailure, PermissionDenied, ProtocolError
from gateway.client.errors import CommitInvalid
from gateway.client.http import Call, interpret, path_segment, prepare

BASE = "http://gateway.example:8000/"


@pytest.fixture
def now(demo_now: datetime) -> datetime:
    return demo_now + timedelta(hours=1)


def test_a_prepared_call_verifies_as_its_identity(consortium: Consortium, now: datetime) -> None:
    officer = consortium.identity("officer.education.sz1")
    call = Call(
        "GET",
        "/v1/me/accesses",
        query={"from": "2026-01-31T08:00:00Z", "department": None, "limit": 5, "open": True},
    )
    prepared = prepare(call, base_url=BASE, identity=officer, now=now)
    assert prepared.url == (
        "http://gateway.example:8000/v1/me/accesses?from=2026-01-31T08%3A00%3A00Z&limit=5&open=true"
    )
    assert prepared.content == b""
    request = HttpRequest.build(prepared.method, prepared.url, prepared.headers, prepared.content)
    authenticated = verify_request(
        request, trust=TrustStore.from_consortium(consortium), nonces=MemoryNonceCache(), now=now
    )
    assert authenticated.identity.name == "officer.education.sz1"


def test_a_json_body_is_serialised_once_and_covered_by_the_signature(
    consortium: Consortium, now: datetime
) -> None:
    registrar = consortium.identity("registrar.publicsecurity.sz1")
    body = {"record_type": "residence_permit", "fields": {"holder_name": "李明"}}
    prepared = prepare(
        Call("POST", "/v1/records", body=body), base_url=BASE, identity=registrar, now=now
    )
    assert json.loads(prepared.content) == body
    assert "李明".encode() in prepared.content  # UTF-8, not \\u escapes
    assert prepared.headers["Content-Type"] == "application/json"
    assert "content-type" in prepared.headers["Signature-Input"]
    trust = TrustStore.from_consortium(consortium)
    request = HttpRequest.build("POST", prepared.url, prepared.headers, prepared.content)
    verify_request(request, trust=trust, nonces=MemoryNonceCache(), now=now)

    tampered = HttpRequest.build("POST", prepared.url, prepared.headers, prepared.content + b" ")
    with pytest.raises(DigestMismatchError):
        verify_request(tampered, trust=trust, nonces=MemoryNonceCache(), now=now)


def test_path_segments_are_percent_encoded() -> None:
    assert path_segment("rec/1 2") == "rec%2F1%202"


def test_problem_answers_raise_their_typed_error() -> None:
    call = Call("GET", "/v1/blobs/" + "a" * 64, expect="bytes")
    problem = {"code": "grant_required", "detail": "no live grant", "status": 403}
    with pytest.raises(PermissionDenied) as denied:
        interpret(
            call, 403, {"content-type": "application/problem+json"}, json.dumps(problem).encode()
        )
    assert denied.value.code == "grant_required"
    assert denied.value.message == "no live grant"

    invalid = {"code": "commit_invalid", "validation_code": "MVCC_READ_CONFLICT", "tx_id": "t"}
    with pytest.raises(CommitInvalid) as conflict:
        interpret(
            call, 409, {"content-type": "application/problem+json"}, json.dumps(invalid).encode()
        )
    assert conflict.value.validation_code == "MVCC_READ_CONFLICT"
    assert conflict.value.tx_id == "t"


def test_answers_outside_the_contract_are_protocol_errors() -> None:
    call = Call("GET", "/v1/ledger")
    with pytest.raises(GatewayFailure) as proxy:
        interpret(call, 502, {"content-type": "text/html"}, b"<html>bad gateway</html>")
    assert proxy.value.code == "http_502"
    with pytest.raises(ProtocolError):
        interpret(call, 200, {"content-type": "text/plain"}, b"ok")
    with pytest.raises(ProtocolError):
        interpret(call, 200, {"content-type": "application/json"}, b"{not json")
    assert interpret(
        call, 200, {"content-type": "application/json; charset=utf-8"}, b'{"a":1}'
    ) == {"a": 1}
    blob = Call("GET", "/v1/blobs/x", expect="bytes")
    assert interpret(blob, 200, {"content-type": "application/octet-stream"}, b"\x01\x02") == (
        b"\x01\x02"
    )
