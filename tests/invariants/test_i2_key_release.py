"""I2: no read without a committed ledger entry.

A payload key is released only against a committed, valid, permitting access
transaction, only for the records and tiers it names, only to the officer
who signed it. Two angles:

* **Every release that happened** (the demo's custodian logs) is traced, from
  the blocks alone, to a valid ``RequestAccess`` transaction created by the
  same officer, whose event grants that record version and tier, for the
  ciphertext the ledger names, sealed to the key the officer registered on the
  ledger, inside the grant's lifetime; and each grant released exactly what
  it granted, each denial nothing.
* **Releases that must not happen**, asked of a live gateway serving a copy of
  the demo home: ciphertexts of tiers and records a fresh grant does not
  name, the grant fetched by anyone but its officer, committed valid
  transactions that are not access grants. Each is refused, and the release
  logs do not grow.

Invalid (MVCC-conflicted) access transactions, edited blocks, expired grants
and unregistered keys are covered by tests/gateway/test_app_flow.py and
tests/gateway/test_custodian.py (docs/invariants.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from crypto.envelope import open_sealed_key
from crypto.errors import DecryptionError
from tests.gateway.test_app_support import Env
from tests.invariants.ledger import LedgerTx, composite_kind, ledger_transactions
from tests.invariants.seeding import DemoRun

OFFICER = "officer.education.sz1"
GRANT_TTL = timedelta(minutes=15)  # GatewaySettings' default, which the demo uses
PROBLEM = "application/problem+json"


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def _fingerprint_of(ltx: LedgerTx) -> str:
    """The SHA-256 fingerprint of the transaction creator's certificate."""
    return _fingerprint(x509.load_pem_x509_certificate(ltx.tx.creator_id_bytes))


def _releases(home: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((home / "custodians").glob("*/releases.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            yield path.parent.name, json.loads(line)


def _release_count(home: Path) -> int:
    return sum(1 for _ in _releases(home))


@dataclass
class LedgerFacts:
    """What the blocks say, for tracing releases: transactions, record versions, keys."""

    transactions: dict[str, LedgerTx]
    versions: dict[tuple[str, int], dict[str, Any]]
    keys: dict[tuple[str, str], list[tuple[int, str]]]  # (msp, fp) -> [(block, sha256)]

    @classmethod
    def read(cls, home: Path) -> LedgerFacts:
        transactions: dict[str, LedgerTx] = {}
        versions: dict[tuple[str, int], dict[str, Any]] = {}
        keys: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        for ltx in ledger_transactions(home):
            transactions.setdefault(ltx.tx.tx_id, ltx)
            if not ltx.valid or ltx.tx.action is None:
                continue
            for key, value in ltx.writes().items():
                if value is None:
                    continue
                if composite_kind(key) == "record_version":
                    record = json.loads(value)
                    versions[(record["record_id"], int(record["version"]))] = record
                elif composite_kind(key) == "enc_key":
                    public = base64.b64decode(json.loads(value)["public_key"])
                    owner = (ltx.tx.creator_msp_id, _fingerprint_of(ltx))
                    keys[owner].append((ltx.block, hashlib.sha256(public).hexdigest()))
        return cls(transactions, versions, dict(keys))


def untraced(facts: LedgerFacts, org: str, line: dict[str, Any]) -> str | None:
    """Why the ledger does not back this release line, or ``None`` if it does."""
    ltx = facts.transactions.get(line["tx_id"])
    if ltx is None or not ltx.valid or ltx.function != "RequestAccess":
        return "no valid RequestAccess transaction"
    if ltx.block != line["block_number"]:
        return "another block"
    officer = (ltx.tx.creator_msp_id, _fingerprint_of(ltx))
    if (line["officer_msp_id"], line["officer_fingerprint"]) != officer:
        return "released to someone other than the transaction's creator"
    event = ltx.event() or {}
    entries = [
        g
        for g in event.get("granted", [])
        if (g["record_id"], g["version"]) == (line["record_id"], line["version"])
    ]
    if len(entries) != 1 or line["tier"] not in entries[0]["tiers"]:
        return "the event does not grant this record version and tier"
    if not entries[0]["owner_org"] == org == line["org"]:
        return "released by a custodian that does not own the record"
    record = facts.versions.get((line["record_id"], line["version"]), {})
    if (
        record.get("tiers", {}).get(line["tier"], {}).get("content_address")
        != (line["content_address"])
    ):
        return "not the ciphertext the ledger names"
    # Sealed to a key the officer registered on the ledger (possibly just after
    # the grant: the SDK registers a missing key, then fetches the grant again).
    if line["recipient_key_sha256"] not in {sha for _, sha in facts.keys.get(officer, [])}:
        return "sealed to a key the officer never registered"
    decided = datetime.fromisoformat(event["decided_at"])
    released = datetime.fromisoformat(line["released_at"])
    if not decided <= released < decided + GRANT_TTL:
        return "released outside the grant's lifetime"
    if datetime.fromisoformat(line["expires_at"]) != decided + GRANT_TTL:
        return "claims another expiry than the grant's"
    return None


def test_every_release_is_backed_by_a_valid_grant_to_that_officer(demo_run: DemoRun) -> None:
    facts = LedgerFacts.read(demo_run.home)
    releases = list(_releases(demo_run.home))
    assert len(releases) > 10
    problems = [
        f"{org} {line['record_id']} {line['tier']} ({line['tx_id'][:12]}): {why}"
        for org, line in releases
        if (why := untraced(facts, org, line)) is not None
    ]
    assert problems == []


def _forged(line: dict[str, Any], facts: LedgerFacts) -> Iterator[tuple[str, dict[str, Any]]]:
    other = next((msp, fp) for (msp, fp) in facts.keys if fp != line["officer_fingerprint"])
    registration = next(
        tx_id for tx_id, ltx in facts.transactions.items() if ltx.function == "RegisterRecord"
    )
    later = datetime.fromisoformat(line["released_at"]) + GRANT_TTL
    event = facts.transactions[line["tx_id"]].event() or {}
    granted = {
        t for g in event["granted"] if g["record_id"] == line["record_id"] for t in g["tiers"]
    }
    upgraded = next(t for t in ("T0", "T1", "T2", "T3") if t not in granted)
    yield "upgraded tier", {**line, "tier": upgraded}
    yield "other officer", {**line, "officer_msp_id": other[0], "officer_fingerprint": other[1]}
    yield "not an access", {**line, "tx_id": registration}
    yield "other ciphertext", {**line, "content_address": "0" * 64}
    yield "unregistered key", {**line, "recipient_key_sha256": "0" * 64}
    yield "expired", {**line, "released_at": later.isoformat()}


def test_the_trace_names_releases_the_ledger_does_not_back(demo_run: DemoRun) -> None:
    facts = LedgerFacts.read(demo_run.home)
    # A release under a grant below T3, so there is a tier it does not grant.
    org, line = next(
        (org, line)
        for org, line in _releases(demo_run.home)
        if line["tier"] == "T1"
        and (facts.transactions[line["tx_id"]].event() or {}).get("tier") in ("T1", "T2")
    )
    assert untraced(facts, org, line) is None
    for what, forged in _forged(line, facts):
        assert untraced(facts, org, forged) is not None, what
    assert untraced(facts, "Tax" if org != "Tax" else "Health", line) is not None


def test_each_grant_released_exactly_its_tiers_and_each_denial_nothing(demo_run: DemoRun) -> None:
    released: dict[str, set[tuple[str, int, str]]] = defaultdict(set)
    for _, line in _releases(demo_run.home):
        released[line["tx_id"]].add((line["record_id"], line["version"], line["tier"]))
    seen = set()
    for ltx in ledger_transactions(demo_run.home):
        if ltx.function != "RequestAccess":
            continue
        event = ltx.event() if ltx.valid else None
        granted = {
            (g["record_id"], g["version"], tier)
            for g in (event or {}).get("granted", [])
            for tier in g["tiers"]
        }
        assert released.get(ltx.tx.tx_id, set()) == granted, ltx.tx.tx_id
        seen.add(event["decision"] if event else "invalid")
    assert {"granted", "denied"} <= seen


# -- a live gateway on a copy of the demo home -------------------------------------------------


@dataclass
class Grant:
    tx_id: str
    subject: str
    access: dict[str, Any]
    released: dict[str, tuple[str, str]]  # content address -> (record id, tier)


@pytest.fixture(scope="module")
def grant(served_demo: Env, demo_run: DemoRun) -> Grant:
    """A fresh school-enrolment grant (T1) by the Education officer about citizen.c1."""
    subject = demo_run.report.citizens["citizen.c1"]
    officer = served_demo.client(OFFICER)
    committed = officer.request_access(
        subject,
        tier="T1",
        purpose="school_enrolment",
        record_types=["residence_permit", "housing_rental", "social_insurance"],
    )
    assert committed.status_code == 200, committed.text
    access = committed.json()["access"]
    assert access["decision"] in ("granted", "partial")
    released = {
        tier["content_address"]: (g["record_id"], tier["tier"])
        for g in access["grants"]
        for tier in g["tiers"]
    }
    assert {t for _, t in released.values()} == {"T0", "T1"}
    return Grant(access["tx_id"], subject, access, released)


def _refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code
    assert "sealed_key" not in response.text


def _addresses_released_to(home: Path, fingerprint: str) -> set[str]:
    return {
        line["content_address"]
        for _, line in _releases(home)
        if line["officer_fingerprint"] == fingerprint
    }


def test_a_grant_opens_only_the_ciphertexts_it_names(
    served_demo: Env, grant: Grant, demo_run: DemoRun
) -> None:
    officer = served_demo.client(OFFICER)
    for address in grant.released:
        blob = officer.request("GET", f"/v1/blobs/{address}")
        assert blob.status_code == 200
        assert hashlib.sha256(blob.content).hexdigest() == address
    # Every ciphertext on the ledger no custodian ever released to this officer.
    allowed = _addresses_released_to(served_demo.home, _fingerprint(officer.identity.certificate))
    assert set(grant.released) <= allowed
    facts = LedgerFacts.read(served_demo.home)
    granted_ids = {record_id for record_id, _ in grant.released.values()}
    kinds: set[str] = set()
    before = _release_count(served_demo.home)
    for (record_id, _), record in sorted(facts.versions.items()):
        for tier, ref in sorted(record["tiers"].items()):
            if ref["content_address"] in allowed:
                continue
            if record_id in granted_ids:
                kinds.add(f"higher tier {tier} of a granted record")
            elif record["subject"] == grant.subject:
                kinds.add("a record of the same person the grant does not name")
            else:
                kinds.add("another person's record")
            _refused(
                officer.request("GET", f"/v1/blobs/{ref['content_address']}"),
                403,
                "grant_required",
            )
    assert {
        "higher tier T2 of a granted record",
        "a record of the same person the grant does not name",
        "another person's record",
    } <= kinds
    assert _release_count(served_demo.home) == before


@pytest.mark.parametrize(
    "name",
    [
        "officer.education.cd1",  # same department, other region
        "officer.hrss.sz1",  # another department
        "registrar.publicsecurity.sz1",  # the owning department
        "auditor.audit.sz1",
        "citizen.c1",  # the person the records are about
    ],
)
def test_nobody_but_its_officer_gets_anything_from_a_grant(
    served_demo: Env, grant: Grant, name: str
) -> None:
    other = served_demo.client(name)
    before = _release_count(served_demo.home)
    fetched = other.request("GET", f"/v1/access-requests/{grant.tx_id}")
    assert fetched.status_code in (403, 404), fetched.text
    assert fetched.headers["content-type"] == PROBLEM
    assert "sealed_key" not in fetched.text
    for address in grant.released:
        _refused(other.request("GET", f"/v1/blobs/{address}"), 403, "grant_required")
    assert _release_count(served_demo.home) == before


def test_the_officer_gets_the_same_keys_again_and_only_they_open_them(
    served_demo: Env, grant: Grant
) -> None:
    again = served_demo.client(OFFICER).request("GET", f"/v1/access-requests/{grant.tx_id}")
    assert again.status_code == 200, again.text
    tiers = [t for g in again.json()["grants"] for t in g["tiers"]]
    assert {t["content_address"] for t in tiers} == set(grant.released)
    mine = served_demo.consortium.encryption_key(OFFICER)
    theirs = served_demo.consortium.encryption_key("officer.education.cd1")
    for tier in tiers:
        sealed = base64.b64decode(tier["sealed_key"])
        assert len(open_sealed_key(sealed, mine)) == 32
        with pytest.raises(DecryptionError):
            open_sealed_key(sealed, theirs)


def test_committed_transactions_that_grant_nothing_release_nothing(
    served_demo: Env, demo_run: DemoRun
) -> None:
    facts = LedgerFacts.read(demo_run.home)
    consortium = served_demo.consortium

    def created_by(name: str, function: str) -> str:
        fingerprint = _fingerprint(consortium.identity(name).certificate)
        return next(
            tx_id
            for tx_id, ltx in facts.transactions.items()
            if ltx.valid and ltx.function == function and _fingerprint_of(ltx) == fingerprint
        )

    before = _release_count(served_demo.home)
    # A valid transaction of the caller's own that is no access request.
    registrar = "registrar.publicsecurity.sz1"
    registered = created_by(registrar, "RegisterRecord")
    _refused(
        served_demo.client(registrar).request("GET", f"/v1/access-requests/{registered}"),
        403,
        "key_release_refused",
    )
    key = created_by(OFFICER, "RegisterEncryptionKey")
    _refused(
        served_demo.client(OFFICER).request("GET", f"/v1/access-requests/{key}"),
        403,
        "key_release_refused",
    )
    # A committed, valid denial: the decision again, and no key.
    mine = _fingerprint(consortium.identity(OFFICER).certificate)
    denied = next(
        e
        for e in demo_run.report.events["denied"]
        if _fingerprint_of(facts.transactions[e]) == mine
    )
    answer = served_demo.client(OFFICER).request("GET", f"/v1/access-requests/{denied}")
    if answer.status_code == 200:
        assert answer.json()["decision"] == "denied"
        assert answer.json()["grants"] == []
        assert "sealed_key" not in answer.text
    else:  # the denial's lifetime is over: still nothing
        _refused(answer, 403, "grant_expired")
    # A transaction id the ledger does not hold.
    _refused(
        served_demo.client(OFFICER).request("GET", f"/v1/access-requests/{'0' * 64}"),
        404,
        "access_event_not_found",
    )
    assert _release_count(served_demo.home) == before


def test_an_invalid_access_transaction_releases_nothing(
    served_demo: Env, demo_run: DemoRun
) -> None:
    """Two proposals of one signed request both endorse; the second commits INVALID (MVCC)."""
    officer = served_demo.client(OFFICER)
    document = officer.access_document(
        demo_run.report.citizens["citizen.c1"],
        tier="T1",
        purpose="school_enrolment",
        record_types=["residence_permit"],
    )
    first = officer.propose("/v1/access-requests", "RequestAccess", document).json()
    second = officer.propose("/v1/access-requests", "RequestAccess", document).json()
    assert officer.commit(first).status_code == 200
    before = _release_count(served_demo.home)
    refused = officer.commit(second)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "commit_invalid"
    assert "sealed_key" not in refused.text
    status = officer.request("GET", f"/v1/transactions/{second['tx_id']}")
    assert status.json()["validation_code"] == "MVCC_READ_CONFLICT"  # on the ledger, invalid
    _refused(
        officer.request("GET", f"/v1/access-requests/{second['tx_id']}"),
        403,
        "key_release_refused",
    )
    assert _release_count(served_demo.home) == before
