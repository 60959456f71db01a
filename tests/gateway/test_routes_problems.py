"""Every refusal is RFC 9457 problem+json with a stable code, and changes nothing (I7).

ASGI-level: the app runs in-process on a started service (real network,
real stores, real signatures) and httpx talks to it through ``ASGITransport``.
Each test checks the status, ``application/problem+json``, the ``code`` and
that the ledger height did not move.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from chaincode.caller import certificate_fingerprint
from chaincode.signed import sign_document
from crypto.ca import CertificateAuthority
from crypto.consortium import Consortium
from crypto.identity import Identity, IdentityKind, officer_attributes
from gateway.app import create_app
from gateway.auth import sign_request
from gateway.service.core import GatewayService
from gateway.service.transactions import build_signed_proposal, sign_transaction
from gateway.settings import GatewaySettings
from tests.gateway.test_app_support import (
    ShiftedClock,
    copy_home,
    identity_number,
    iso,
    residence_permit,
    subject_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"
LIMIT_BYTES = 8192
RATE = 40


@dataclass
class Harness:
    service: GatewayService
    http: httpx.AsyncClient
    consortium: Consortium
    clock: ShiftedClock

    def identity(self, name: str) -> Identity:
        return self.consortium.identity(name)

    def proposal(
        self,
        name: str,
        function: str,
        argument: Mapping[str, Any],
        *,
        skew: timedelta = timedelta(),
    ) -> str:
        raw = build_signed_proposal(
            self.identity(name),
            channel=self.service.ledger.channel,
            chaincode=self.service.ledger.chaincode,
            function=function,
            argument=argument,
            now=self.clock() + skew,
        )
        return base64.b64encode(raw).decode("ascii")

    def headers(
        self,
        name: str | Identity,
        method: str,
        path: str,
        content: bytes,
        *,
        skew: timedelta = timedelta(),
        nonce: str | None = None,
    ) -> dict[str, str]:
        identity = name if isinstance(name, Identity) else self.identity(name)
        extra = {"Content-Type": "application/json"} if content else {}
        return sign_request(
            method,
            f"http://testserver{path}",
            extra,
            content,
            identity=identity,
            now=self.clock() + skew,
            nonce=nonce,
        )

    async def send(
        self, name: str | Identity, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> httpx.Response:
        content = b"" if body is None else json.dumps(body).encode()
        headers = self.headers(name, method, path, content, **kwargs)
        return await self.http.request(method, path, content=content, headers=headers)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def harness(
    demo_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    home = copy_home(demo_home, tmp_path_factory.mktemp("problems"))
    clock = ShiftedClock()
    settings = GatewaySettings(home=home, max_request_bytes=LIMIT_BYTES, rate_limit_per_minute=RATE)
    service = await GatewayService.start(settings, clock=clock)
    app = create_app(settings, service=service)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield Harness(service, http, Consortium.load(home), clock)
    finally:
        await service.aclose()


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["type"] == f"urn:accessledger:problem:{code}"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["instance"].startswith("/")
    return body


async def test_malformed_json(harness: Harness) -> None:
    height = harness.service.ledger.height
    content = b'{"proposal": '
    headers = harness.headers("officer.education.sz1", "POST", "/v1/access-requests", content)
    response = await harness.http.post("/v1/access-requests", content=content, headers=headers)
    problem(response, 422, "request_invalid")
    assert harness.service.ledger.height == height


async def test_body_not_utf8(harness: Harness) -> None:
    """A body FastAPI cannot even decode is malformed JSON too: 422, not 400."""
    height = harness.service.ledger.height
    content = b'{"proposal": "\xff\xfe"}'
    headers = harness.headers("officer.education.sz1", "POST", "/v1/access-requests", content)
    response = await harness.http.post("/v1/access-requests", content=content, headers=headers)
    body = problem(response, 422, "request_invalid")
    assert "\\xff" not in body["detail"]
    assert harness.service.ledger.height == height


async def test_unknown_member(harness: Harness) -> None:
    height = harness.service.ledger.height
    response = await harness.send(
        "officer.education.sz1", "POST", "/v1/access-requests", {"proposal": "AAAA", "extra": 1}
    )
    body = problem(response, 422, "request_invalid")
    assert ["body", "extra"] in [e["loc"] for e in body["errors"]]
    assert harness.service.ledger.height == height


async def test_oversize_body(harness: Harness) -> None:
    height = harness.service.ledger.height
    body = {"proposal": "A" * (LIMIT_BYTES + 10)}
    response = await harness.send("officer.education.sz1", "POST", "/v1/access-requests", body)
    problem(response, 413, "request_too_large")
    assert harness.service.ledger.height == height


async def test_rate_limit(harness: Harness) -> None:
    statuses = [
        (await harness.send("officer.tax.cd1", "GET", "/v1/ledger")).status_code
        for _ in range(RATE)
    ]
    assert statuses == [200] * RATE
    refused = await harness.send("officer.tax.cd1", "GET", "/v1/ledger")
    problem(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    # Another identity is not affected.
    assert (await harness.send("officer.tax.sz1", "GET", "/v1/ledger")).status_code == 200


async def test_missing_signature(harness: Harness) -> None:
    response = await harness.http.get("/v1/ledger")
    problem(response, 401, "signature_missing")


async def test_tampered_body_and_signature(harness: Harness) -> None:
    height = harness.service.ledger.height
    content = json.dumps({"proposal": "AAAA"}).encode()
    headers = harness.headers("officer.education.sz1", "POST", "/v1/access-requests", content)
    altered = content.replace(b"AAAA", b"BBBB")
    response = await harness.http.post("/v1/access-requests", content=altered, headers=headers)
    problem(response, 401, "digest_mismatch")
    headers = harness.headers("officer.education.sz1", "POST", "/v1/access-requests", content)
    label, _, value = headers["Signature"].partition("=:")
    raw = bytearray(base64.b64decode(value.rstrip(":")))
    raw[5] ^= 1
    headers["Signature"] = f"{label}=:{base64.b64encode(bytes(raw)).decode()}:"
    response = await harness.http.post("/v1/access-requests", content=content, headers=headers)
    problem(response, 401, "signature_invalid")
    assert harness.service.ledger.height == height


async def test_stale_timestamp(harness: Harness) -> None:
    response = await harness.send(
        "officer.education.sz1", "GET", "/v1/ledger", skew=-timedelta(minutes=10)
    )
    problem(response, 401, "timestamp_stale")


async def test_reused_nonce(harness: Harness) -> None:
    headers = harness.headers("officer.education.sz1", "GET", "/v1/ledger", b"")
    assert (await harness.http.get("/v1/ledger", headers=headers)).status_code == 200
    problem(await harness.http.get("/v1/ledger", headers=headers), 401, "nonce_reused")


async def test_unknown_and_revoked_certificates(harness: Harness) -> None:
    now = harness.clock()
    stranger_ca = CertificateAuthority.create(
        org="Elsewhere", msp_id="ElsewhereMSP", domain="elsewhere.example", now=now
    )
    attributes = officer_attributes(role="caseworker", region="440300", clearance=2)
    cert, key = stranger_ca.issue(
        common_name="officer.elsewhere", node_ou="client", attributes=attributes, now=now
    )
    stranger = Identity(
        name="officer.elsewhere",
        kind=IdentityKind.OFFICER,
        org="Elsewhere",
        msp_id="ElsewhereMSP",
        certificate=cert,
        private_key=key,
        attributes=attributes,
    )
    problem(await harness.send(stranger, "GET", "/v1/ledger"), 401, "certificate_unknown")
    officer = harness.identity("officer.hrss.sz2")
    saved = harness.service.revoked
    harness.service.revoked = frozenset({certificate_fingerprint(officer.certificate)})
    try:
        problem(await harness.send(officer, "GET", "/v1/ledger"), 401, "certificate_revoked")
    finally:
        harness.service.revoked = saved


async def test_unknown_route_and_method(harness: Harness) -> None:
    problem(await harness.send("officer.education.sz1", "GET", "/v1/nothing"), 404, "not_found")
    problem(
        await harness.send("officer.education.sz1", "PUT", "/v1/ledger"),
        405,
        "method_not_allowed",
    )
    problem(await harness.http.get("/nothing"), 404, "not_found")


async def test_proposal_problems(harness: Harness) -> None:
    height = harness.service.ledger.height
    officer = "officer.education.sz1"
    # Not a SignedProposal at all.
    garbage = base64.b64encode(b"\x0a\x03abc\xff\xff").decode()
    problem(
        await harness.send(officer, "POST", "/v1/access-requests", {"proposal": garbage}),
        400,
        "proposal_invalid",
    )
    # A proposal for another endpoint's function.
    wrong = harness.proposal(officer, "RegisterEncryptionKey", {"public_key": "AA=="})
    problem(
        await harness.send(officer, "POST", "/v1/access-requests", {"proposal": wrong}),
        400,
        "proposal_invalid",
    )
    # Signed by someone else than the HTTP caller.
    theirs = harness.proposal("officer.education.cd1", "RequestAccess", {"x": 1})
    body = problem(
        await harness.send(officer, "POST", "/v1/access-requests", {"proposal": theirs}),
        403,
        "proposal_creator_mismatch",
    )
    assert len(body["tx_id"]) == 64
    # Dated an hour ago.
    old = harness.proposal(officer, "RequestAccess", {"x": 1}, skew=-timedelta(hours=1))
    problem(
        await harness.send(officer, "POST", "/v1/access-requests", {"proposal": old}),
        400,
        "proposal_time_skew",
    )
    assert harness.service.ledger.height == height
    assert len(harness.service.pending) == 0


async def test_chaincode_refusals_keep_their_codes(harness: Harness) -> None:
    height = harness.service.ledger.height
    # A citizen asks for records with a well-formed signed request: the contract forbids it.
    citizen = "citizen.c3"
    request = {
        "format": "accessledger-access-request/1",
        "subject": subject_of(harness.consortium, identity_number(3)),
        "record_types": ["tax_record"],
        "tier": "T1",
        "purpose": "service_delivery",
        "nonce": "n" * 32,
        "timestamp": iso(harness.clock()),
    }
    signed = json.loads(sign_document(request, harness.identity(citizen).signer))
    refused = problem(
        await harness.send(
            citizen,
            "POST",
            "/v1/access-requests",
            {"proposal": harness.proposal(citizen, "RequestAccess", signed)},
        ),
        403,
        "forbidden",
    )
    assert len(refused["tx_id"]) == 64
    # A malformed document: the contract's own code and status.
    document = {"document": {"format": "accessledger-access-request/1"}, "signature": "AA=="}
    problem(
        await harness.send(
            citizen,
            "POST",
            "/v1/access-requests",
            {"proposal": harness.proposal(citizen, "RequestAccess", document)},
        ),
        400,
        "invalid_argument",
    )
    consent = {"document": {"format": "accessledger-consent/1"}, "signature": "AA=="}
    problem(
        await harness.send(
            "officer.education.sz1",
            "POST",
            "/v1/me/consents",
            {"proposal": harness.proposal("officer.education.sz1", "GrantConsent", consent)},
        ),
        400,
        "invalid_argument",
    )
    assert harness.service.ledger.height == height
    assert len(harness.service.pending) == 0


async def test_commit_problems(harness: Harness) -> None:
    officer = "officer.health.sz1"
    problem(
        await harness.send(
            officer, "POST", f"/v1/transactions/{'a' * 64}/commit", {"signature": "MEUCIQAAAA=="}
        ),
        404,
        "transaction_not_found",
    )
    key = base64.b64encode(harness.consortium.encryption_public_key(officer)).decode()
    proposal = harness.proposal(officer, "RegisterEncryptionKey", {"public_key": key})
    prepared = await harness.send(officer, "POST", "/v1/transactions", {"proposal": proposal})
    assert prepared.status_code == 201, prepared.text
    tx = prepared.json()
    height = harness.service.ledger.height
    wrong = sign_transaction(harness.identity(officer), b"not the transaction")
    path = f"/v1/transactions/{tx['tx_id']}/commit"
    bad = {"signature": base64.b64encode(wrong).decode()}
    problem(await harness.send(officer, "POST", path, bad), 400, "transaction_signature_invalid")
    # Someone else cannot commit it.
    other = sign_transaction(
        harness.identity("officer.health.cd1"), base64.b64decode(tx["transaction"])
    )
    theirs = {"signature": base64.b64encode(other).decode()}
    problem(
        await harness.send("officer.health.cd1", "POST", path, theirs), 404, "transaction_not_found"
    )
    assert harness.service.ledger.height == height
    # The creator still can.
    right = sign_transaction(harness.identity(officer), base64.b64decode(tx["transaction"]))
    done = await harness.send(
        officer, "POST", path, {"signature": base64.b64encode(right).decode()}
    )
    assert done.status_code == 200, done.text
    assert done.json()["validation_code"] == "VALID"


async def test_record_problems_store_nothing(harness: Harness) -> None:
    height = harness.service.ledger.height
    store = harness.service.stores.store("PublicSecurity")
    stored = store.list_addresses()
    number = identity_number(5)
    base = {"record_type": "residence_permit", "subject_identity_number": number}
    fields = {"issuing_city_code": "440300", "status": "valid"}
    registrar = "registrar.publicsecurity.sz1"
    body = problem(
        await harness.send(registrar, "POST", "/v1/records", {**base, "fields": fields}),
        422,
        "record_invalid",
    )
    assert body["rule"] == "required"
    bad_number = number[:-1] + ("0" if number[-1] != "0" else "1")
    problem(
        await harness.send(
            registrar,
            "POST",
            "/v1/records",
            {**base, "subject_identity_number": bad_number, "fields": fields},
        ),
        422,
        "identity_number_invalid",
    )
    problem(
        await harness.send(
            registrar, "POST", "/v1/records", {**base, "record_type": "pet_licence", "fields": {}}
        ),
        422,
        "unknown_record_type",
    )
    full = {**base, "fields": residence_permit(number)}
    # An officer who is not a registrar: the contract refuses, nothing is stored.
    problem(
        await harness.send("officer.publicsecurity.sz1", "POST", "/v1/records", full),
        403,
        "not_registrar",
    )
    # A registrar of another department.
    problem(
        await harness.send("registrar.housing.sz1", "POST", "/v1/records", full),
        403,
        "not_owner_department",
    )
    assert store.list_addresses() == stored
    assert harness.service.ledger.height == height


async def test_internal_errors_leak_nothing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = identity_number(9)

    def broken() -> None:
        raise RuntimeError(f"database said {secret}")

    monkeypatch.setattr(harness.service, "ledger_info", broken)
    response = await harness.send("officer.education.sz1", "GET", "/v1/ledger")
    body = problem(response, 500, "internal_error")
    assert secret not in response.text
    assert "RuntimeError" not in body["detail"]


async def test_openapi_documents_problems(harness: Harness) -> None:
    document = (await harness.http.get("/openapi.json")).json()
    operation = document["paths"]["/v1/access-requests"]["post"]
    assert PROBLEM in operation["responses"]["401"]["content"]
    assert operation["security"] == [{"httpMessageSignature": []}]
    for path, operations in document["paths"].items():
        for method, spec in operations.items():
            assert spec.get("summary"), (method, path)
            for status, response in spec["responses"].items():
                if status[0] in "45":
                    assert list(response.get("content", {PROBLEM: {}})) == [PROBLEM]
