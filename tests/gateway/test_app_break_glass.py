"""Over real HTTP: a break-glass justification is checked, kept off-chain, never logged.

A Health registrar registers a health record; a Health physician asks for
all of it in an emergency, sending the justification text beside the
proposal. The gateway must refuse text that does not hash to the signed
request's ``justification_hash``, store matching text encrypted in the
Audit department's store (where contest reasons go) so that the Audit
custodian -- and only it -- opens it, and keep the text out of every block
and every log line (I1). The granted record names its catalogue schema
version, read from the ledger's copy of the record.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crypto.envelope import open_sealed_key
from crypto.errors import DecryptionError
from gateway.service.notes import JUSTIFICATION, NOTES_ORG, note_id
from gateway.store import StoreRegistry
from network.fabric.blocks import iter_delimited
from tests.gateway.client.people import new_person, record
from tests.gateway.test_app_support import Env, SignedClient, has_note, live_env, read_note

REGISTRAR = "registrar.health.sz1"
PHYSICIAN = "officer.health.sz2"
AUDITOR = "auditor.audit.sz1"
PROBLEM = "application/problem+json"
#: Names a person on purpose: exactly the kind of text that must stay off the ledger.
JUSTIFICATION_TEXT = "患者王小明昏迷送入急诊 (unconscious, brought in by ambulance 120-4471)"


@pytest.fixture(scope="module")
def env(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with live_env(demo_home, tmp_path_factory.mktemp("break-glass")) as started:
        yield started


@pytest.fixture(scope="module")
def health(env: Env) -> dict[str, Any]:
    """A health record registered by the Health registrar."""
    person = new_person()
    registrar = env.client(REGISTRAR)
    try:
        registered = registrar.register_record(
            {
                "record_type": "health_record",
                "subject_identity_number": person,
                "fields": record("health_record", person),
                "record_id": "hr-break-glass-1",
            }
        )
    finally:
        registrar.close()
    draft: dict[str, Any] = registered["draft"]
    return draft


@pytest.fixture
def physician(env: Env) -> Iterator[SignedClient]:
    client = env.client(PHYSICIAN)
    yield client
    client.close()


def _emergency(physician: SignedClient, subject: str, justification: str) -> dict[str, Any]:
    """The signed break-glass request document committing to ``justification``'s hash."""
    return physician.access_document(
        subject,
        tier="T3",
        purpose="emergency_care",
        record_types=["health_record"],
        emergency=True,
        justification=justification,
    )


@pytest.fixture(scope="module")
def committed(
    env: Env, health: dict[str, Any], caplog_module: list[logging.LogRecord]
) -> dict[str, Any]:
    """A break-glass request sent with its justification text, committed."""
    physician = env.client(PHYSICIAN)
    try:
        document = _emergency(physician, health["subject"], JUSTIFICATION_TEXT)
        response = physician.submit(
            "/v1/access-requests",
            "RequestAccess",
            document,
            extra={"justification": JUSTIFICATION_TEXT},
        )
    finally:
        physician.close()
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def caplog_module() -> Iterator[list[logging.LogRecord]]:
    """Every log record of every logger, at DEBUG, while this module's gateway works."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root = logging.getLogger()
    handler, level = Keep(level=logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_break_glass_is_granted_flagged_and_names_the_justification_hash(
    committed: dict[str, Any],
) -> None:
    access = committed["access"]
    assert access["decision"] == "granted"
    assert access["emergency"] is True
    assert "review_required" in access["obligations"]


def test_justification_is_stored_encrypted_where_contest_reasons_are(
    env: Env, committed: dict[str, Any]
) -> None:
    tx_id = committed["tx_id"]
    ciphertext, text = read_note(env.home, JUSTIFICATION, tx_id)
    assert text == JUSTIFICATION_TEXT
    assert JUSTIFICATION_TEXT.encode() not in ciphertext
    assert "王小明".encode() not in ciphertext
    # Sealed to the Audit custodian: the requesting officer's own key does not open it.
    stores = StoreRegistry(env.home)
    try:
        [entry] = stores.store(NOTES_ORG).list_tier_keys(record_id=note_id(JUSTIFICATION, tx_id))
    finally:
        stores.close()
    with pytest.raises(DecryptionError):
        open_sealed_key(entry.sealed_key, env.consortium.encryption_key(PHYSICIAN))


def test_justification_text_is_in_no_block(env: Env, committed: dict[str, Any]) -> None:
    """I1: the ledger holds the justification's hash, never the text."""
    response = env.client(AUDITOR).request("GET", "/v1/audit/blocks?from=0")
    assert response.status_code == 200
    blocks = list(iter_delimited(io.BytesIO(response.content)))
    assert len(blocks) == int(response.headers["x-accessledger-height"])
    digest = hashlib.sha256(JUSTIFICATION_TEXT.encode()).hexdigest().encode()
    assert any(digest in block for block in blocks)  # we looked where the request went
    forms = {
        JUSTIFICATION_TEXT.encode(),
        json.dumps(JUSTIFICATION_TEXT).encode(),  # \\u-escaped
        "王小明".encode(),
        b"120-4471",
    }
    for number, block in enumerate(blocks):
        for form in forms:
            assert form not in block, f"block {number} holds the justification"


def test_justification_text_is_in_no_log_line(
    committed: dict[str, Any], caplog_module: list[logging.LogRecord]
) -> None:
    # The HTTP client logs each request at INFO: proof that the capture saw this run.
    assert any("/v1/access-requests" in entry.getMessage() for entry in caplog_module)
    for entry in caplog_module:
        line = entry.getMessage() + repr(entry.args)
        assert "王小明" not in line
        assert "120-4471" not in line


def test_a_justification_that_does_not_match_the_signed_hash_is_refused(
    env: Env, health: dict[str, Any], physician: SignedClient
) -> None:
    height = env.gateway.height()
    document = _emergency(physician, health["subject"], JUSTIFICATION_TEXT)
    refused = physician.propose(
        "/v1/access-requests",
        "RequestAccess",
        document,
        extra={"justification": JUSTIFICATION_TEXT + "!"},
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM
    problem = refused.json()
    assert problem["code"] == "justification_mismatch"
    assert "王小明" not in refused.text
    # Nothing endorsed, nothing stored: the same transaction cannot be committed.
    assert not has_note(env.home, JUSTIFICATION, problem["tx_id"])
    commit = physician.request(
        "POST",
        f"/v1/transactions/{problem['tx_id']}/commit",
        {"signature": "MEUCIQDxAAAAAAAA"},
    )
    assert commit.status_code == 404
    assert commit.json()["code"] == "transaction_not_found"
    assert env.gateway.height() == height


def test_justification_text_without_a_hash_in_the_request_is_refused(
    env: Env, health: dict[str, Any], physician: SignedClient
) -> None:
    document = physician.access_document(
        health["subject"], tier="T1", purpose="emergency_care", record_types=["health_record"]
    )
    assert document["document"]["justification_hash"] is None
    refused = physician.propose(
        "/v1/access-requests",
        "RequestAccess",
        document,
        extra={"justification": JUSTIFICATION_TEXT},
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "justification_mismatch"
    assert not has_note(env.home, JUSTIFICATION, refused.json()["tx_id"])


@pytest.mark.parametrize("justification", ["", "x" * 4001, 42])
def test_a_malformed_justification_member_is_request_invalid(
    health: dict[str, Any], physician: SignedClient, justification: object
) -> None:
    document = _emergency(physician, health["subject"], "why")
    refused = physician.propose(
        "/v1/access-requests", "RequestAccess", document, extra={"justification": justification}
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "request_invalid"


def test_without_the_text_a_break_glass_request_still_commits_and_stores_nothing(
    env: Env, health: dict[str, Any], physician: SignedClient
) -> None:
    document = _emergency(physician, health["subject"], "kept by the hospital")
    response = physician.submit("/v1/access-requests", "RequestAccess", document)
    assert response.status_code == 200, response.text
    assert not has_note(env.home, JUSTIFICATION, response.json()["tx_id"])


def test_grants_name_the_schema_version_on_the_ledger(
    env: Env, health: dict[str, Any], committed: dict[str, Any]
) -> None:
    [grant] = committed["access"]["grants"]
    assert grant["record_id"] == "hr-break-glass-1"
    # The version RegisterRecord put on the ledger for this record.
    assert grant["schema_version"] == health["schema_version"] == 1
    again = env.client(PHYSICIAN).request("GET", f"/v1/access-requests/{committed['tx_id']}")
    assert again.status_code == 200
    assert [g["schema_version"] for g in again.json()["grants"]] == [1]
    openapi = env.client(AUDITOR).request("GET", "/openapi.json").json()
    grant_schema = openapi["components"]["schemas"]["Grant"]
    assert "schema_version" in grant_schema["required"]
