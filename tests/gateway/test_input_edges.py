"""Edge-case input gets a 4xx problem and changes nothing (I7), never a 500.

Each case here once answered ``500 internal_error`` or a misleading problem:
times whose UTC conversion overflows, integers beyond the JSON-safe range and
lone surrogates in caller content (records, notes), chaincode refusals on
query paths losing their code, protobuf's own text in a config-update
problem, and a well-formed but foreign paging cursor. The app runs
in-process on a started service (real network, stores and signatures).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import pytest_asyncio
from fabric_protos.common import common_pb2

from crypto.consortium import Consortium
from gateway.app import create_app
from gateway.errors import GatewayError, problem_response
from gateway.schemas import AmendmentInput, RecordInput
from gateway.service.core import GatewayService
from gateway.service.ledger import _refusal
from gateway.service.notes import check_hash
from gateway.service.queries import _cursor, _next_cursor, parse_moment
from gateway.settings import GatewaySettings
from network.engine.proposal import Proposal
from network.fabric.configupdate import config_update_envelope
from tests.gateway.test_app_support import (
    ShiftedClock,
    catalogue_example,
    copy_home,
    identity_number,
    subject_of,
    submit_in_process,
)
from tests.gateway.test_routes_problems import Harness, problem

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"
SAFE = 2**53 - 1
REGISTRAR = "registrar.tax.sz1"
AUDITOR = "auditor.audit.sz1"
CITIZEN = "citizen.c2"
#: What protobuf says when it cannot parse a message; never ours to show.
LIBRARY_TEXT = ("Error parsing message", "common.Envelope'", "ConfigUpdateEnvelope'")


class EdgeHarness(Harness):
    """The problems suite's harness, plus proposals whose argument is any JSON text."""

    def raw_proposal(self, name: str, function: str, argument: bytes) -> str:
        """A signed proposal whose argument is exactly ``argument`` (any JSON text)."""
        identity = self.identity(name)
        proposal = Proposal.build(
            creator=identity.serialized(),
            channel_id=self.service.ledger.channel,
            chaincode_name=self.service.ledger.chaincode,
            function=function,
            args=[argument],
            now=self.clock(),
        ).sign(identity.signer)
        return base64.b64encode(proposal.signed_proposal().SerializeToString()).decode()


def with_query(path: str, query: Mapping[str, str]) -> str:
    return f"{path}?{urlencode(query, quote_via=quote)}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def harness(
    demo_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[EdgeHarness]:
    home = copy_home(demo_home, tmp_path_factory.mktemp("edges"))
    clock = ShiftedClock()
    settings = GatewaySettings(home=home)
    service = await GatewayService.start(settings, clock=clock)
    app = create_app(settings, service=service)
    consortium = Consortium.load(home)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                # A bound citizen, for the /v1/me views.
                citizen = consortium.identity(CITIZEN)
                await submit_in_process(
                    service,
                    consortium.identity("registrar.civilaffairs.sz1"),
                    "RegisterCitizen",
                    {
                        "certificate": citizen.cert_pem().decode("ascii"),
                        "subject": subject_of(consortium, identity_number(77)),
                    },
                )
                yield EdgeHarness(service, http, consortium, clock)
    finally:
        await service.aclose()


def tax_record(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "record_type": "tax_record",
        "subject_identity_number": identity_number(61),
        "fields": catalogue_example("tax_record"),
    }
    body.update(overrides)
    return body


# -- 1. times whose conversion to UTC overflows ---------------------------------------------


@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"], ids=["late", "early"]
)
async def test_out_of_range_times_are_request_invalid(harness: EdgeHarness, moment: str) -> None:
    height = harness.service.ledger.height
    for name, path, query in (
        (AUDITOR, "/v1/audit/events", {"department": "HRSS", "from": moment}),
        (AUDITOR, "/v1/audit/events", {"department": "HRSS", "to": moment}),
        (CITIZEN, "/v1/me/accesses", {"from": moment}),
        (CITIZEN, "/v1/me/accesses", {"to": moment}),
    ):
        body = problem(
            await harness.send(name, "GET", with_query(path, query)), 422, "request_invalid"
        )
        assert "RFC 3339" in body["detail"] or "range" in body["detail"], body
    assert harness.service.ledger.height == height


def test_parse_moment_keeps_the_extremes_it_can_represent() -> None:
    assert parse_moment("9999-12-31T23:59:59Z", "from") == "9999-12-31T23:59:59.000000Z"
    assert parse_moment("0001-01-01T23:59:59+23:59", "to") == "0001-01-01T00:00:59.000000Z"
    with pytest.raises(GatewayError) as refused:
        parse_moment("0001-01-01T00:00:00+00:01", "to")
    assert (refused.value.status, refused.value.code) == (422, "request_invalid")


# -- 2/3. integers beyond the safe range, lone surrogates ------------------------------------


UNSAFE_RECORDS = {
    "metadata-2**53+1": tax_record(metadata={"k": 2**53 + 1}),
    "metadata-10**30": tax_record(metadata={"k": 10**30}),
    "metadata-negative": tax_record(metadata={"k": -(2**53)}),
    "metadata-surrogate": tax_record(metadata={"k": "\ud800x"}),
    "metadata-key-surrogate": tax_record(metadata={"k\udc00": 1}),
    # The member name is in the error's loc: the problem must still render.
    "metadata-key-surrogate-big": tax_record(metadata={"k\udc00": 10**30}),
    "fields-surrogate": tax_record(
        fields={**catalogue_example("tax_record"), "taxpayer_name": "\ud800x"}
    ),
    "fields-key-surrogate": tax_record(fields={**catalogue_example("tax_record"), "\udfff": 1}),
    "fields-big-integer": tax_record(
        fields={**catalogue_example("tax_record"), "months_with_tax_paid": 10**30}
    ),
    "fields-nested-big-integer": tax_record(
        fields={
            **catalogue_example("tax_record"),
            "withholding_agents": [{"name": "x", "unified_social_credit_code": 2**60}],
        }
    ),
}


@pytest.mark.parametrize("body", list(UNSAFE_RECORDS.values()), ids=list(UNSAFE_RECORDS))
async def test_records_refuse_values_without_a_canonical_json_form(
    harness: EdgeHarness, body: dict[str, Any]
) -> None:
    height = harness.service.ledger.height
    store = harness.service.stores.store("Tax")
    stored = store.list_addresses()
    problem(await harness.send(REGISTRAR, "POST", "/v1/records", body), 422, "request_invalid")
    amendment = {k: v for k, v in body.items() if k != "record_id"}
    problem(
        await harness.send(REGISTRAR, "POST", "/v1/records/tax-edge-1/versions", amendment),
        422,
        "request_invalid",
    )
    assert store.list_addresses() == stored
    assert harness.service.ledger.height == height


async def test_records_accept_the_safe_integer_bounds(harness: EdgeHarness) -> None:
    body = tax_record(record_id="tax-edge-bounds", metadata={"high": SAFE, "low": -SAFE})
    response = await harness.send(REGISTRAR, "POST", "/v1/records", body)
    assert response.status_code == 201, response.text
    assert response.json()["argument"]["metadata"] == {"high": SAFE, "low": -SAFE}


async def test_openapi_documents_the_safe_integer_range(harness: EdgeHarness) -> None:
    document = (await harness.http.get("/openapi.json")).json()
    metadata = document["components"]["schemas"]["RecordInput"]["properties"]["metadata"]
    text = json.dumps(metadata)
    assert f'"maximum": {SAFE}' in text
    assert f'"minimum": -{SAFE}' in text


async def test_record_service_maps_canonical_json_errors(harness: EdgeHarness) -> None:
    """Defence in depth: content that bypassed the schema is still a 422, and stores nothing."""
    caller = harness.identity(REGISTRAR)
    store = harness.service.stores.store("Tax")
    stored = store.list_addresses()
    base = tax_record()
    for metadata, fields in (
        ({"k": 10**30}, base["fields"]),
        (None, {**base["fields"], "taxpayer_name": "\ud800"}),
    ):
        for model in (RecordInput, AmendmentInput):
            body = model.model_construct(
                record_type="tax_record",
                schema_version=None,
                subject=None,
                subject_identity_number=base["subject_identity_number"],
                fields=fields,
                metadata=metadata,
            )
            with pytest.raises(GatewayError) as refused:
                await harness.service.records.draft(caller, body, now=harness.clock())
            assert (refused.value.status, refused.value.code) == (422, "request_invalid")
    assert store.list_addresses() == stored


async def test_ledger_query_maps_unencodable_arguments(harness: EdgeHarness) -> None:
    caller = harness.identity(AUDITOR)
    for arg in ({"org": "\ud800"}, {"org": "HRSS", "limit": 10**30}):
        with pytest.raises(GatewayError) as refused:
            await harness.service.ledger.query(
                caller, "ListAccessByDepartment", arg, now=harness.clock()
            )
        assert (refused.value.status, refused.value.code) == (422, "request_invalid")


NOTE_ROUTES = [
    ("citizen.c2", "/v1/me/contests", "ContestAccess", "reason"),
    (AUDITOR, "/v1/audit/reviews", "ReviewAccess", "note"),
    ("officer.health.sz1", "/v1/access-requests", "RequestAccess", "justification"),
]


@pytest.mark.parametrize(
    ("name", "path", "function", "member"), NOTE_ROUTES, ids=[r[3] for r in NOTE_ROUTES]
)
async def test_note_texts_refuse_lone_surrogates(
    harness: EdgeHarness, name: str, path: str, function: str, member: str
) -> None:
    height = harness.service.ledger.height
    proposal = harness.raw_proposal(name, function, b'{"event_id":"e-1"}')
    body = {"proposal": proposal, member: "reason \ud800"}
    problem(await harness.send(name, "POST", path, body), 422, "request_invalid")
    assert harness.service.ledger.height == height
    assert len(harness.service.pending) == 0


def test_check_hash_refuses_text_without_utf8_form() -> None:
    with pytest.raises(GatewayError) as refused:
        check_hash("\udbff", "0" * 64, member="reason_hash", tx_id="t" * 64)
    assert (refused.value.status, refused.value.code) == (422, "request_invalid")


PROPOSAL_ARGUMENTS = {
    "surrogate": b'{"document":{"format":"accessledger-consent/1","subject":"\\ud800"},'
    b'"signature":"AA=="}',
    "big-integer": b'{"document":{"format":"accessledger-consent/1","n":1000000000000000000000'
    b'000000000},"signature":"AA=="}',
}


@pytest.mark.parametrize(
    "argument", list(PROPOSAL_ARGUMENTS.values()), ids=list(PROPOSAL_ARGUMENTS)
)
async def test_proposal_arguments_without_a_canonical_form_are_refused(
    harness: EdgeHarness, argument: bytes
) -> None:
    """Caller-built proposals are the contract's to refuse: a 400, never a 500."""
    height = harness.service.ledger.height
    proposal = harness.raw_proposal(CITIZEN, "GrantConsent", argument)
    response = await harness.send(CITIZEN, "POST", "/v1/me/consents", {"proposal": proposal})
    assert response.headers["content-type"] == PROBLEM
    assert 400 <= response.status_code < 500, response.text
    assert harness.service.ledger.height == height


# -- 4. chaincode refusals on query paths keep their code -----------------------------------


FORBIDDEN = "only auditors, and admins, may read"
LACKS = "ListAccessByDepartment argument lacks from, to"


@pytest.mark.parametrize(
    ("message", "status", "code", "text"),
    [
        (f"[forbidden] {FORBIDDEN}", 403, "forbidden", FORBIDDEN),
        (f"chaincode response 403, [forbidden] {FORBIDDEN}", 403, "forbidden", FORBIDDEN),
        (f"[invalid_argument] {LACKS}", 400, "invalid_argument", LACKS),
        (f"chaincode response 400, [invalid_argument] {LACKS}", 400, "invalid_argument", LACKS),
        ("chaincode response 409, [record_exists] a, b", 409, "record_exists", "a, b"),
        ("[not_found] no event, sorry", 404, "not_found", "no event, sorry"),
    ],
)
def test_refusal_keeps_the_contract_code_and_text(
    message: str, status: int, code: str, text: str
) -> None:
    """Query answers are bare ``[code] text``; endorsements prefix ``chaincode response N, ``."""
    error = _refusal(message, "t" * 64, status)
    assert (error.status, error.code, error.message) == (status, code, text)


def test_refusal_of_unformatted_messages() -> None:
    error = _refusal("chaincode response 400, the shim failed, badly", "t" * 64, 400)
    assert (error.status, error.code) == (400, "chaincode_error")
    error = _refusal("[internal_error] X failed (KeyError)", "t" * 64, 500)
    assert (error.status, error.code) == (500, "chaincode_failed")


async def test_query_refusal_keeps_the_contract_code(harness: EdgeHarness) -> None:
    with pytest.raises(GatewayError) as refused:
        await harness.service.ledger.query(
            harness.identity(AUDITOR),
            "ListAccessByDepartment",
            {"org": "HRSS"},
            now=harness.clock(),
        )
    assert (refused.value.status, refused.value.code) == (400, "invalid_argument")
    assert "from, to" in refused.value.message


async def test_department_events_need_from_and_to(harness: EdgeHarness) -> None:
    for query in ({"department": "HRSS"}, {"department": "HRSS", "from": "2026-01-01T00:00:00Z"}):
        body = problem(
            await harness.send(AUDITOR, "GET", with_query("/v1/audit/events", query)),
            422,
            "request_invalid",
        )
        assert "from and to" in body["detail"]


# -- 5. library text never reaches a client ---------------------------------------------------


async def test_config_update_problems_are_in_our_words(harness: EdgeHarness) -> None:
    height = harness.service.ledger.height
    admin = harness.identity("admin.tax")
    valid = config_update_envelope(
        harness.service.ledger.channel, b"", [], creator=admin, now=harness.clock()
    )
    envelope = common_pb2.Envelope.FromString(valid)
    payload = common_pb2.Payload.FromString(envelope.payload)
    payload.data = b"\xff\xff\xff"
    garbage = payload.SerializeToString()
    bad_data = common_pb2.Envelope(payload=garbage, signature=admin.sign(garbage))
    for encoded in ("AAAA", base64.b64encode(bad_data.SerializeToString()).decode()):
        response = await harness.send(
            "admin.tax", "POST", "/v1/governance/config-updates", {"envelope": encoded}
        )
        body = problem(response, 422, "config_update_invalid")
        for text in LIBRARY_TEXT:
            assert text not in body["detail"], body
    assert harness.service.ledger.height == height


# -- 6. a cursor the gateway did not issue ---------------------------------------------------


def _encoded(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        _encoded({"t": 1, "e": 2}),
        _encoded({"t": "yesterday", "e": "x"}),
        _encoded({"t": "2026-01-01T00:00:00.000000Z", "e": ""}),
        _encoded({"t": "2026-01-01T00:00:00.000000Z", "e": ["x"]}),
        _encoded(["t", "e"]),
    ],
)
async def test_foreign_cursor_is_named_as_such(harness: EdgeHarness, cursor: str) -> None:
    body = problem(
        await harness.send(CITIZEN, "GET", with_query("/v1/me/accesses", {"cursor": cursor})),
        422,
        "request_invalid",
    )
    assert body["detail"] == "cursor is not one this gateway issued"


def test_issued_cursor_round_trips() -> None:
    event = {"decided_at": "2026-01-01T00:00:00.120000Z", "event_id": "ev-1"}
    assert _cursor(_next_cursor(event)) == ("2026-01-01T00:00:00.120000Z", "ev-1")


def test_problems_render_text_that_has_no_utf8_form() -> None:
    """A message quoting a caller's member name still renders as a problem, not a 500."""
    response = problem_response(
        status=422,
        code="record_invalid",
        detail="fields.\ud800 is not allowed",
        instance="/v1/records",
        extensions={"pointer": "/\udfff", "rule": "additionalProperties"},
    )
    body = json.loads(bytes(response.body))
    assert body["detail"] == "fields.? is not allowed"
    assert body["pointer"] == "/?"
    assert body["code"] == "record_invalid"
