"""Strict requests (I7): duplicate JSON members and undeclared or repeated query parameters.

Over real HTTP against a live gateway (uvicorn, real network, real stores,
signed requests). Each refused request would have been accepted before
:class:`gateway.routing.StrictRoute`: the JSON parser kept the last of two
members and FastAPI ignored query parameters a route does not declare.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from gateway.routes import (
    access_requests,
    audit,
    blobs,
    custodians,
    governance,
    health,
    me,
    records,
    transactions,
)
from gateway.routing import StrictRoute, require_strict
from gateway.store import StoreRegistry
from tests.gateway.test_app_support import (
    Env,
    SignedClient,
    catalogue_example,
    identity_number,
    live_env,
    residence_permit,
)

PROBLEM = "application/problem+json"
CITIZEN = "citizen.c1"
REGISTRAR = "registrar.publicsecurity.sz1"
AUDITOR = "auditor.audit.sz1"
ROUTERS = (access_requests, audit, blobs, custodians, governance, health, me, records, transactions)


@pytest.fixture(scope="module")
def env(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with live_env(demo_home, tmp_path_factory.mktemp("strict")) as started:
        yield started


@pytest.fixture(scope="module")
def subject(env: Env) -> str:
    """A rental of a migrant bound to citizen.c1, and one (denied) access to it on the ledger."""
    rental = env.client("registrar.housing.sz1").register_record(
        {
            "record_type": "housing_rental",
            "subject_identity_number": identity_number(77),
            "fields": catalogue_example("housing_rental"),
        }
    )
    pseudonym: str = rental["draft"]["subject"]
    bound = env.client("registrar.civilaffairs.sz1").submit(
        "/v1/transactions",
        "RegisterCitizen",
        {
            "certificate": env.consortium.identity(CITIZEN).cert_pem().decode("ascii"),
            "subject": pseudonym,
        },
    )
    assert bound.status_code == 200, bound.text
    asked = env.client("officer.publicsecurity.sz1").request_access(
        pseudonym, tier="T2", purpose="points_hukou", record_types=["housing_rental"]
    )
    assert asked.status_code == 200, asked.text
    return pseudonym


def refused(response: httpx.Response) -> dict[str, Any]:
    """The ``422 request_invalid`` problem of ``response``."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["code"] == "request_invalid"
    assert body["type"] == "urn:accessledger:problem:request_invalid"
    assert body["status"] == 422
    return body


def stored(env: Env, org: str) -> list[str]:
    stores = StoreRegistry(env.home)
    try:
        return sorted(stores.store(org).list_addresses())
    finally:
        stores.close()


def record_body(number: str, *, status: str = '"valid"') -> str:
    """A residence permit registration as JSON text, its ``fields.status`` given as ``status``."""
    fields = {k: v for k, v in residence_permit(number).items() if k != "status"}
    fields_text = json.dumps(fields, ensure_ascii=False)[:-1] + f', "status": {status}}}'
    return (
        f'{{"record_type": "residence_permit", "subject_identity_number": "{number}",'
        f' "fields": {fields_text}}}'
    )


def post_raw(client: SignedClient, path: str, text: str) -> httpx.Response:
    return client.request("POST", path, raw=text.encode("utf-8"))


# -- duplicate members ------------------------------------------------------------------------


def test_duplicate_top_level_member_is_refused_and_stores_nothing(env: Env) -> None:
    registrar = env.client(REGISTRAR)
    before = stored(env, "PublicSecurity")
    number = identity_number(61)
    # The last record_type is valid: a last-wins parser would draft and store the record.
    text = '{"record_type": "pet_licence", ' + record_body(number)[1:]
    body = refused(post_raw(registrar, "/v1/records", text))
    assert "'record_type'" in body["detail"]
    assert body["errors"] == [{"loc": ["body", "record_type"], "msg": "duplicate object member"}]
    assert stored(env, "PublicSecurity") == before
    # The same body without the repeat is drafted.
    accepted = post_raw(registrar, "/v1/records", record_body(number))
    assert accepted.status_code == 201, accepted.text
    assert stored(env, "PublicSecurity") != before


def test_duplicate_nested_member_is_refused(env: Env) -> None:
    registrar = env.client(REGISTRAR)
    before = stored(env, "PublicSecurity")
    text = record_body(identity_number(62), status='"revoked_and_bogus", "status": "valid"')
    body = refused(post_raw(registrar, "/v1/records", text))
    assert body["detail"] == "duplicate member 'status' in body.fields"
    assert body["errors"] == [
        {"loc": ["body", "fields", "status"], "msg": "duplicate object member"}
    ]
    assert stored(env, "PublicSecurity") == before


def test_duplicate_member_on_the_hot_path(env: Env) -> None:
    officer = env.client("officer.education.sz1")
    height = env.gateway.height()
    proposal = officer.proposal("RequestAccess", {"x": 1})
    text = f'{{"proposal": "AAAA", "proposal": "{proposal}"}}'
    body = refused(post_raw(officer, "/v1/access-requests", text))
    assert body["errors"][0]["loc"] == ["body", "proposal"]
    assert env.gateway.height() == height
    # Malformed JSON is still reported as before, not as a duplicate.
    malformed = refused(post_raw(officer, "/v1/access-requests", '{"proposal": '))
    assert "duplicate" not in malformed["detail"]


def test_a_repeated_name_that_is_not_text_is_quoted_safely(env: Env) -> None:
    """A lone surrogate or a very long repeated name is still a 422 whose problem renders."""
    officer = env.client("officer.education.sz1")
    surrogate = refused(post_raw(officer, "/v1/access-requests", '{"\\udc80x": 1, "\\udc80x": 2}'))
    assert surrogate["errors"][0]["loc"] == ["body", "?x"]
    long = "n" * 5000
    body = refused(post_raw(officer, "/v1/access-requests", f'{{"{long}": 1, "{long}": 2}}'))
    assert len(body["detail"]) < 200


# -- query parameters -------------------------------------------------------------------------


def test_unknown_query_parameter_on_my_accesses(env: Env, subject: str) -> None:
    citizen = env.client(CITIZEN)
    everything = citizen.request("GET", "/v1/me/accesses")
    assert everything.status_code == 200, everything.text
    assert everything.json()["subject"] == subject
    assert len(everything.json()["accesses"]) >= 1
    body = refused(citizen.request("GET", "/v1/me/accesses?form=2999-01-01"))
    assert "'form'" in body["detail"]
    assert "from" in body["detail"]  # the detail lists what the route takes
    assert body["errors"] == [{"loc": ["query", "form"], "msg": "unknown query parameter"}]
    # The declared spelling works and filters.
    later = citizen.request("GET", "/v1/me/accesses?from=2999-01-01T00:00:00Z&limit=5")
    assert later.status_code == 200, later.text
    assert later.json()["accesses"] == []
    # Authentication still comes first: an unsigned request learns nothing about the query.
    unsigned = httpx.get(f"{env.gateway.url}/v1/me/accesses?form=x")
    assert unsigned.status_code == 401


def test_unknown_query_parameter_on_audit_events(env: Env, subject: str) -> None:
    auditor = env.client(AUDITOR)
    listed = auditor.request("GET", f"/v1/audit/events?subject={subject}")
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["events"]) >= 1
    body = refused(
        auditor.request("GET", f"/v1/audit/events?subject={subject}&form=2999-01-01&x=1")
    )
    assert [e["loc"] for e in body["errors"]] == [["query", "form"], ["query", "x"]]
    assert "'form', 'x'" in body["detail"]


def test_repeated_query_parameter_is_refused(env: Env, subject: str) -> None:
    citizen, auditor = env.client(CITIZEN), env.client(AUDITOR)
    body = refused(citizen.request("GET", "/v1/me/accesses?limit=1&limit=2"))
    assert body["errors"] == [{"loc": ["query", "limit"], "msg": "given more than once"}]
    assert "'limit'" in body["detail"]
    refused(auditor.request("GET", f"/v1/audit/events?subject={subject}&subject={subject}"))


def test_routes_without_query_parameters_refuse_any(env: Env) -> None:
    assert httpx.get(f"{env.gateway.url}/healthz").status_code == 200
    body = refused(httpx.get(f"{env.gateway.url}/healthz?verbose=1"))
    assert "takes no query parameters" in body["detail"]
    refused(env.client("officer.education.sz1").request("GET", "/v1/ledger?channel=x"))


# -- wiring -----------------------------------------------------------------------------------


def test_every_route_is_strict_and_accepts_what_openapi_declares(env: Env) -> None:
    """What a route accepts is exactly what the OpenAPI document (schemathesis) says it takes."""
    document = env.gateway.app.openapi()
    checked = 0
    for module in ROUTERS:
        for route in module.router.routes:
            assert isinstance(route, StrictRoute), route
            for method in route.methods:
                operation = document["paths"][route.path][method.lower()]
                declared = {
                    p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
                }
                assert route.query_names == declared, (method, route.path)
                checked += 1
    assert checked >= 25


def test_require_strict_refuses_a_plain_router() -> None:
    plain = APIRouter()

    @plain.get("/x")
    def x() -> None:
        return None

    with pytest.raises(TypeError, match="StrictRoute"):
        require_strict(plain)
    strict = APIRouter(route_class=StrictRoute)
    strict.add_api_route("/x", x)
    require_strict(strict)
