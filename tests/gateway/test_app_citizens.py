"""End to end over real HTTP: a citizen's view, consent and contest; an auditor's replay and review.

The story: a Housing registrar registers a rental for a migrant; CivilAffairs
binds the migrant's citizen credential to their pseudonym; a PublicSecurity
hukou officer scoring a points-based hukou application is denied without
consent, granted with it, denied again after the consent is revoked. The
citizen sees all three accesses and contests one; an auditor finds it among
the open reviews, closes it, and streams the raw ledger for replay.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chaincode.signed import CONSENT_FORMAT, CONSENT_REVOCATION_FORMAT, sign_document
from gateway.store import StoreRegistry
from network.fabric.blocks import iter_delimited, parse_block, verify_chain
from tests.gateway.test_app_support import (
    Env,
    SignedClient,
    catalogue_example,
    identity_number,
    iso,
    live_env,
)

HUKOU = "officer.publicsecurity.sz1"
CITIZEN = "citizen.c1"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def env(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with live_env(demo_home, tmp_path_factory.mktemp("citizens")) as started:
        yield started


@pytest.fixture(scope="module")
def story(env: Env) -> dict[str, Any]:
    """Register a rental, bind citizen.c1 to its subject, run the consent story."""
    number = identity_number(42)
    rental = catalogue_example("housing_rental")
    registrar = env.client("registrar.housing.sz1")
    registered = registrar.register_record(
        {
            "record_type": "housing_rental",
            "subject_identity_number": number,
            "fields": rental,
            "record_id": "hr-story-1",
        }
    )
    subject = registered["draft"]["subject"]
    civil = env.client("registrar.civilaffairs.sz1")
    bound = civil.submit(
        "/v1/transactions",
        "RegisterCitizen",
        {
            "certificate": env.consortium.identity(CITIZEN).cert_pem().decode("ascii"),
            "subject": subject,
        },
    )
    assert bound.status_code == 200, bound.text
    officer, citizen = env.client(HUKOU), env.client(CITIZEN)

    def ask() -> dict[str, Any]:
        response = officer.request_access(
            subject, tier="T2", purpose="points_hukou", record_types=["housing_rental"]
        )
        assert response.status_code == 200, response.text
        access: dict[str, Any] = response.json()["access"]
        return access

    before = ask()
    consent = {
        "format": CONSENT_FORMAT,
        "subject": subject,
        "grantee_org": "PublicSecurity",
        "purpose": "points_hukou",
        "record_types": ["housing_rental"],
        "max_tier": "T2",
        "expires_at": iso(env.clock() + timedelta(days=30)),
        "nonce": secrets.token_hex(16),
        "timestamp": iso(env.clock()),
    }
    granted = citizen.submit(
        "/v1/me/consents",
        "GrantConsent",
        _signed(citizen, consent),
    )
    assert granted.status_code == 200, granted.text
    consent_id = granted.json()["result"]["consent_id"]
    during = ask()
    revocation = {
        "format": CONSENT_REVOCATION_FORMAT,
        "consent_id": consent_id,
        "nonce": secrets.token_hex(16),
        "timestamp": iso(env.clock()),
    }
    revoked = citizen.submit(
        f"/v1/me/consents/{consent_id}",
        "RevokeConsent",
        _signed(citizen, revocation),
        method="DELETE",
    )
    assert revoked.status_code == 200, revoked.text
    after = ask()
    return {
        "subject": subject,
        "consent_id": consent_id,
        "before": before,
        "during": during,
        "after": after,
    }


def _signed(client: SignedClient, document: dict[str, Any]) -> dict[str, Any]:
    import json

    signed: dict[str, Any] = json.loads(sign_document(document, client.identity.signer))
    return signed


def test_consent_decides_points_hukou_reads(story: dict[str, Any]) -> None:
    assert story["before"]["decision"] == "denied"
    assert story["during"]["decision"] == "granted"
    assert [t["tier"] for t in story["during"]["grants"][0]["tiers"]] == ["T0", "T1", "T2"]
    assert story["after"]["decision"] == "denied"


def test_citizen_sees_every_access_to_their_data(env: Env, story: dict[str, Any]) -> None:
    citizen = env.client(CITIZEN)
    page = citizen.request("GET", "/v1/me/accesses")
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["subject"] == story["subject"]
    events = body["accesses"]
    assert [e["event_id"] for e in events] == [
        story[k]["tx_id"] for k in ("before", "during", "after")
    ]
    assert [e["decision"] for e in events] == ["denied", "granted", "denied"]
    for event in events:
        assert event["officer"]["org"] == "PublicSecurity"
        assert event["officer"]["name"] == HUKOU
        assert event["purpose"] == "points_hukou"
        assert event["records"][0]["record_id"] == "hr-story-1"
    assert events[1]["records"][0]["tiers"] == ["T0", "T1", "T2"]
    assert body["next_cursor"] is None
    # Filters and paging.
    other = citizen.request("GET", "/v1/me/accesses?department=Education")
    assert other.json()["accesses"] == []
    first = citizen.request("GET", "/v1/me/accesses?limit=2").json()
    assert len(first["accesses"]) == 2
    assert first["next_cursor"]
    second = citizen.request("GET", f"/v1/me/accesses?limit=2&cursor={first['next_cursor']}")
    rest = second.json()
    assert [e["event_id"] for e in rest["accesses"]] == [story["after"]["tx_id"]]
    assert rest["next_cursor"] is None
    window = citizen.request(
        "GET", f"/v1/me/accesses?from={events[1]['decided_at']}&to={events[2]['decided_at']}"
    )
    assert [e["event_id"] for e in window.json()["accesses"]] == [events[1]["event_id"]]


def test_consents_are_listed_with_their_status(env: Env, story: dict[str, Any]) -> None:
    consents = env.client(CITIZEN).request("GET", "/v1/me/consents").json()["consents"]
    [consent] = consents
    assert consent["consent_id"] == story["consent_id"]
    assert consent["status"] == "revoked"


def test_unbound_citizen_is_refused(env: Env, story: dict[str, Any]) -> None:
    response = env.client("citizen.c2").request("GET", "/v1/me/accesses")
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "citizen_not_registered"


def test_contest_then_auditor_review(env: Env, story: dict[str, Any]) -> None:
    citizen = env.client(CITIZEN)
    event_id = story["during"]["tx_id"]
    reason = "I never applied for points-based hukou."
    argument = {"event_id": event_id, "reason_hash": hashlib.sha256(reason.encode()).hexdigest()}
    mismatch = citizen.propose(
        "/v1/me/contests", "ContestAccess", argument, extra={"reason": reason + "!"}
    )
    assert mismatch.status_code == 422
    assert mismatch.json()["code"] == "note_hash_mismatch"
    contested = citizen.submit(
        "/v1/me/contests", "ContestAccess", argument, extra={"reason": reason}
    )
    assert contested.status_code == 200, contested.text
    contest_tx = contested.json()["tx_id"]
    assert contested.json()["result"]["review"]["status"] == "open"
    # The reason is kept off-chain, encrypted, in the Audit department's store.
    stores = StoreRegistry(env.home)
    try:
        [key] = stores.store("Audit").list_tier_keys(record_id=f"contest_reason-{contest_tx}")
        assert reason.encode() not in stores.store("Audit").get_blob(key.address)
    finally:
        stores.close()

    auditor = env.client("auditor.audit.sz1")
    open_events = auditor.request("GET", "/v1/audit/events?open_review=true").json()["events"]
    assert event_id in {e["event_id"] for e in open_events}
    note = "Applicant confirmed the request in person."
    reviewed = auditor.submit(
        "/v1/audit/reviews",
        "ReviewAccess",
        {
            "event_id": event_id,
            "outcome": "justified",
            "note_hash": hashlib.sha256(note.encode()).hexdigest(),
        },
        extra={"note": note},
    )
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["result"]["review"]["status"] == "closed"
    seen = citizen.request("GET", "/v1/me/accesses").json()["accesses"]
    review = next(e["review"] for e in seen if e["event_id"] == event_id)
    assert review == {"status": "closed", "reasons": ["contested"], "contests": 1}
    # Only auditors review.
    refused = env.client(HUKOU).propose(
        "/v1/audit/reviews",
        "ReviewAccess",
        {"event_id": event_id, "outcome": "justified", "note_hash": "0" * 64},
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"


def test_auditor_streams_the_ledger_for_replay(env: Env, story: dict[str, Any]) -> None:
    auditor = env.client("auditor.audit.sz1")
    response = auditor.request("GET", "/v1/audit/blocks?from=0")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    blocks = [parse_block(raw) for raw in iter_delimited(io.BytesIO(response.content))]
    assert len(blocks) == int(response.headers["x-accessledger-height"])
    assert [int(b.header.number) for b in blocks] == list(range(len(blocks)))
    verify_chain(blocks)
    tail = auditor.request("GET", "/v1/audit/blocks?from=3")
    assert len(list(iter_delimited(io.BytesIO(tail.content)))) == len(blocks) - 3
    refused = env.client(HUKOU).request("GET", "/v1/audit/blocks?from=0")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM


def test_department_log_is_for_auditors(env: Env, story: dict[str, Any]) -> None:
    decided = story["during"]["decided_at"]
    day = decided[:10]
    query = f"/v1/audit/events?department=PublicSecurity&from={day}T00:00:00Z&to={day}T23:59:59Z"
    listed = env.client("auditor.audit.sz1").request("GET", query)
    assert listed.status_code == 200, listed.text
    ids = {e["event_id"] for e in listed.json()["events"]}
    assert {story[k]["tx_id"] for k in ("before", "during", "after")} <= ids
    refused = env.client("officer.education.sz1").request("GET", query)
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"


def test_paging_walks_every_access_once(env: Env) -> None:
    """Small pages, with and without a department filter, yield every access once, in order."""
    number = identity_number(43)
    registrar = env.client("registrar.housing.sz1")
    registered = registrar.register_record(
        {
            "record_type": "housing_rental",
            "subject_identity_number": number,
            "fields": catalogue_example("housing_rental"),
            "record_id": "hr-paging-1",
        }
    )
    subject = registered["draft"]["subject"]
    civil = env.client("registrar.civilaffairs.sz1")
    bound = civil.submit(
        "/v1/transactions",
        "RegisterCitizen",
        {
            "certificate": env.consortium.identity("citizen.c2").cert_pem().decode("ascii"),
            "subject": subject,
        },
    )
    assert bound.status_code == 200, bound.text
    officer, citizen = env.client(HUKOU), env.client("citizen.c2")

    def ask(_: int) -> str:
        response = officer.request_access(
            subject, tier="T2", purpose="points_hukou", record_types=["housing_rental"]
        )
        assert response.status_code == 200, response.text
        return str(response.json()["tx_id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        asked = set(pool.map(ask, range(27)))
    everything = citizen.request("GET", "/v1/me/accesses?limit=200").json()
    assert everything["next_cursor"] is None
    order = [e["event_id"] for e in everything["accesses"]]
    assert set(order) == asked
    assert len(order) == 27
    for query in ("limit=4", "limit=5&department=PublicSecurity"):
        walked: list[str] = []
        cursor = ""
        for _ in range(20):
            page = citizen.request("GET", f"/v1/me/accesses?{query}{cursor}").json()
            assert len(page["accesses"]) <= 5
            walked += [e["event_id"] for e in page["accesses"]]
            if page["next_cursor"] is None:
                break
            cursor = f"&cursor={page['next_cursor']}"
        assert walked == order, query
    none = citizen.request("GET", "/v1/me/accesses?limit=3&department=Education").json()
    assert none["accesses"] == []
    assert none["next_cursor"] is None
