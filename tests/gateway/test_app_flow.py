"""End to end over real HTTP on 127.0.0.1: register, request access, fetch, decrypt -- and I2.

One gateway (uvicorn in a background thread) serves a private copy of the
demo home for the whole module, twice: simulating chaincode in its own
process, then in a worker process (``simulation_workers``). A PublicSecurity registrar registers a
residence permit; an Education enrolment officer asks for it for school
enrolment. Every check goes through the public API with the callers' own
keys, exactly as an agency system would.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chaincode.caller import certificate_fingerprint
from crypto.envelope import AssociatedData, decrypt_tier, open_sealed_key
from crypto.errors import DecryptionError
from gateway.custodian import RELEASE_FORMAT, release_log_path
from policies.catalogue import Catalogue
from tests.gateway.test_app_support import (
    Env,
    SignedClient,
    identity_number,
    live_env,
    residence_permit,
)

OFFICER = "officer.education.sz1"
REGISTRAR = "registrar.publicsecurity.sz1"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=[0, 1], ids=["simulate-in-process", "simulate-in-worker"])
def env(
    demo_home: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Env]:
    """The gateway, simulating chaincode in its own process or in a worker process."""
    workers = int(request.param)
    with live_env(
        demo_home, tmp_path_factory.mktemp("flow"), simulation_workers=workers
    ) as started:
        yield started


@pytest.fixture(scope="module")
def permit(env: Env) -> dict[str, Any]:
    """A residence permit registered by the PublicSecurity registrar."""
    number = identity_number(7)
    fields = residence_permit(number)
    registrar = env.client(REGISTRAR)
    out = registrar.register_record(
        {
            "record_type": "residence_permit",
            "subject_identity_number": number,
            "fields": fields,
            "record_id": "rp-flow-1",
        }
    )
    registrar.close()
    return {"fields": fields, "number": number, **out}


@pytest.fixture
def officer(env: Env) -> Iterator[SignedClient]:
    client = env.client(OFFICER)
    yield client
    client.close()


def _granted(officer: SignedClient, permit: dict[str, Any], tier: str = "T1") -> dict[str, Any]:
    response = officer.request_access(
        permit["draft"]["subject"],
        tier=tier,
        purpose="school_enrolment",
        record_types=["residence_permit"],
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_registration_commits_metadata_only(env: Env, permit: dict[str, Any]) -> None:
    commit, draft = permit["commit"], permit["draft"]
    assert commit["function"] == "RegisterRecord"
    assert commit["validation_code"] == "VALID"
    assert commit["result"]["record_id"] == "rp-flow-1" == draft["record_id"]
    assert commit["result"]["version"] == 1
    assert draft["subject"].startswith("ps1:")
    assert draft["owner_org"] == "PublicSecurity"
    assert set(draft["tiers"]) == {"T0", "T1", "T2", "T3"}
    # I1: what the ledger holds names no one.
    on_ledger = json.dumps(commit["result"], ensure_ascii=False)
    for value in ("李明", permit["number"], "13800138000", "科技园"):
        assert value not in on_ledger
    status = env.client(REGISTRAR).request("GET", f"/v1/transactions/{commit['tx_id']}")
    assert status.json() == {
        "tx_id": commit["tx_id"],
        "block_number": commit["block_number"],
        "validation_code": "VALID",
    }


def test_granted_access_decrypts_to_the_original_fields(
    env: Env, permit: dict[str, Any], officer: SignedClient
) -> None:
    committed = _granted(officer, permit)
    access = committed["access"]
    assert access["decision"] == "granted"
    assert access["denials"] == []
    assert access["policy"]["version"] == 1
    [grant] = access["grants"]
    assert grant["record_id"] == "rp-flow-1"
    assert [t["tier"] for t in grant["tiers"]] == ["T0", "T1"]
    private = env.consortium.encryption_key(OFFICER)
    groups = {}
    for tier in grant["tiers"]:
        blob = officer.request("GET", tier["blob_url"])
        assert blob.status_code == 200
        assert hashlib.sha256(blob.content).hexdigest() == tier["content_address"]
        key = open_sealed_key(base64.b64decode(tier["sealed_key"]), private)
        ad = AssociatedData("rp-flow-1", 1, "residence_permit", tier["tier"])
        groups[tier["tier"]] = json.loads(decrypt_tier(key, blob.content, ad))
    catalogue = Catalogue.load_default()
    merged = catalogue.merge_tiers("residence_permit", 1, groups)
    tiers = catalogue.field_tiers("residence_permit", 1)
    expected = {k: v for k, v in permit["fields"].items() if tiers[k] in ("T0", "T1")}
    assert merged == expected
    assert "holder_identity_number" not in merged
    assert "residence_address" not in merged
    # The key was sealed to this officer's registered key: nobody else opens it.
    other = env.consortium.encryption_key("officer.education.cd1")
    with pytest.raises(DecryptionError):
        open_sealed_key(base64.b64decode(grant["tiers"][1]["sealed_key"]), other)


def test_ciphertexts_inline_match_the_blobs(permit: dict[str, Any], officer: SignedClient) -> None:
    document = officer.access_document(
        permit["draft"]["subject"], tier="T1", purpose="school_enrolment", record_ids=["rp-flow-1"]
    )
    prepared = officer.propose("/v1/access-requests", "RequestAccess", document)
    assert prepared.status_code == 201
    assert "decision" not in prepared.text  # no decision before it is on the ledger
    committed = officer.commit(prepared.json(), include_ciphertexts=True)
    assert committed.status_code == 200
    for tier in committed.json()["access"]["grants"][0]["tiers"]:
        inline = base64.b64decode(tier["ciphertext"])
        assert inline == officer.request("GET", tier["blob_url"]).content


def test_t1_grant_never_yields_a_t2_key_or_blob(
    permit: dict[str, Any], officer: SignedClient
) -> None:
    access = _granted(officer, permit)["access"]
    released = {t["tier"] for g in access["grants"] for t in g["tiers"]}
    assert released == {"T0", "T1"}
    for tier in ("T2", "T3"):
        address = permit["draft"]["tiers"][tier]["content_address"]
        refused = officer.request("GET", f"/v1/blobs/{address}")
        assert refused.status_code == 403
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["code"] == "grant_required"


def test_denied_request_is_a_committed_event(
    env: Env, permit: dict[str, Any], officer: SignedClient
) -> None:
    committed = _granted(officer, permit, tier="T2")
    access = committed["access"]
    assert access["decision"] == "denied"
    assert access["grants"] == []
    assert access["recipient"] is None
    [denial] = access["denials"]
    assert denial["record_id"] == "rp-flow-1"
    assert denial["reason"]
    assert access["policy"]["bundle_hash"] == committed["result"]["policy"]["bundle_hash"]
    # I3: on the ledger, signed by the officer.
    assert committed["result"]["request"]["tier"] == "T2"
    assert committed["result"]["officer"]["name"] == OFFICER
    auditor = env.client("auditor.audit.sz1")
    events = auditor.request("GET", "/v1/audit/events")  # no selector: a problem
    assert events.status_code == 422
    assert events.json()["code"] == "request_invalid"
    listed = auditor.request(
        "GET",
        f"/v1/audit/events?subject={permit['draft']['subject']}",
    )
    assert listed.status_code == 200
    decisions = {e["event_id"]: e["decision"] for e in listed.json()["events"]}
    assert decisions[committed["tx_id"]] == "denied"


def test_blob_without_a_grant_is_forbidden(env: Env, permit: dict[str, Any]) -> None:
    address = permit["draft"]["tiers"]["T0"]["content_address"]
    for name in ("officer.hrss.sz1", REGISTRAR):
        refused = env.client(name).request("GET", f"/v1/blobs/{address}")
        assert refused.status_code == 403
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["code"] == "grant_required"


def test_another_officer_cannot_use_the_grant(
    env: Env, permit: dict[str, Any], officer: SignedClient
) -> None:
    access = _granted(officer, permit)["access"]
    other = env.client("officer.education.cd1")
    again = other.request("GET", f"/v1/access-requests/{access['tx_id']}")
    assert again.status_code == 404
    assert again.json()["code"] == "access_event_not_found"
    blob = other.request("GET", access["grants"][0]["tiers"][1]["blob_url"])
    assert blob.status_code == 403
    assert blob.json()["code"] == "grant_required"
    # The officer who signed gets it again while it is live.
    mine = officer.request("GET", f"/v1/access-requests/{access['tx_id']}")
    assert mine.status_code == 200
    assert mine.json()["decision"] == "granted"


def test_expired_grant_yields_nothing(
    env: Env, permit: dict[str, Any], officer: SignedClient
) -> None:
    access = _granted(officer, permit)["access"]
    blob_url = access["grants"][0]["tiers"][1]["blob_url"]
    env.clock.offset = timedelta(minutes=15, seconds=5)
    try:
        again = officer.request("GET", f"/v1/access-requests/{access['tx_id']}")
        assert again.status_code == 403
        assert again.json()["code"] == "grant_expired"
        blob = officer.request("GET", blob_url)
        assert blob.status_code == 403
        assert blob.json()["code"] in ("grant_expired", "grant_required")
        assert "sealed_key" not in again.text
    finally:
        env.clock.offset = timedelta()


def test_invalid_transaction_releases_no_key(
    env: Env, permit: dict[str, Any], officer: SignedClient
) -> None:
    # The same signed request proposed twice: both endorse, only the first commits.
    document = officer.access_document(
        permit["draft"]["subject"], tier="T1", purpose="school_enrolment", record_ids=["rp-flow-1"]
    )
    first = officer.propose("/v1/access-requests", "RequestAccess", document).json()
    second = officer.propose("/v1/access-requests", "RequestAccess", document).json()
    height = env.gateway.height()
    assert officer.commit(first).status_code == 200
    refused = officer.commit(second)
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "commit_invalid"
    assert problem["validation_code"] == "MVCC_READ_CONFLICT"
    assert problem["tx_id"] == second["tx_id"]
    assert env.gateway.height() > height  # it is on the ledger, as invalid
    release = officer.request("GET", f"/v1/access-requests/{second['tx_id']}")
    assert release.status_code == 403
    assert release.json()["code"] == "key_release_refused"
    assert "sealed_key" not in release.text


def test_key_release_log_backs_every_release(env: Env, permit: dict[str, Any]) -> None:
    path = release_log_path(env.home, "PublicSecurity")
    text = path.read_text(encoding="utf-8")
    for value in ("李明", permit["number"], "13800138000", "科技园", "ps1:"):
        assert value not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines, "releases were logged"
    fingerprint = certificate_fingerprint(env.consortium.identity(OFFICER).certificate)
    for entry in lines:
        assert entry["format"] == RELEASE_FORMAT
        assert entry["record_id"] == "rp-flow-1"
        assert entry["tier"] in ("T0", "T1")
        assert entry["officer_fingerprint"] == fingerprint
        assert entry["released_at"] < entry["expires_at"]
        assert (
            entry["content_address"] == permit["draft"]["tiers"][entry["tier"]]["content_address"]
        )
        status = env.client(OFFICER).request("GET", f"/v1/transactions/{entry['tx_id']}")
        assert status.json()["validation_code"] == "VALID"


def test_metrics_count_decisions_and_releases(env: Env, permit: dict[str, Any]) -> None:
    import httpx

    text = httpx.get(f"{env.gateway.url}/metrics").text
    assert 'accessledger_access_decisions_total{decision="granted"}' in text
    assert 'accessledger_access_decisions_total{decision="denied"}' in text
    assert 'accessledger_transactions_committed_total{function="RequestAccess"' in text
    assert 'accessledger_key_releases_total{org="PublicSecurity"}' in text
    assert 'route="/v1/access-requests"' in text
    health = httpx.get(f"{env.gateway.url}/healthz").json()
    assert health["status"] == "ok"
    assert health["height"] == env.gateway.height()
