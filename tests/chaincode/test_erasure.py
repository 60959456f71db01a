"""EraseRecord: who may erase, what it writes, and RequestAccess on an erased record."""

from __future__ import annotations

import hashlib
import json

import pytest

from crypto.consortium import Consortium
from tests.chaincode.harness import LedgerHarness, Result, subject_of

REASON = hashlib.sha256(b"subject asked for deletion under PIPL Art. 47").hexdigest()


@pytest.fixture
def subject(consortium: Consortium) -> str:
    return subject_of(consortium, 31)


@pytest.fixture
async def records(ledger: LedgerHarness, subject: str) -> LedgerHarness:
    for registrar, record_type, record_id in (
        ("registrar.hrss.sz1", "social_insurance", "si-1"),
        ("registrar.housing.sz1", "housing_rental", "hr-1"),
    ):
        result = await ledger.register(registrar, record_type, subject, record_id=record_id)
        assert result.ok, result.message
    return ledger


async def _erase(ledger: LedgerHarness, who: str, record_id: str, **extra: str) -> Result:
    return await ledger.submit(
        ledger.identity(who), "EraseRecord", {"record_id": record_id, **extra}
    )


async def test_owner_registrar_erases(records: LedgerHarness, subject: str) -> None:
    before = await records.evaluate(
        records.identity("registrar.hrss.sz1"), "GetRecord", {"record_id": "si-1"}
    )
    result = await _erase(records, "registrar.hrss.sz1", "si-1", reason_hash=REASON)
    assert result.ok, result.message
    erasure = result.payload
    assert erasure["format"] == "accessledger-erasure/1"
    assert erasure["record_id"] == "si-1"
    assert erasure["tx_id"] == result.tx_id
    assert erasure["reason_hash"] == REASON
    assert erasure["erased_by"]["name"] == "registrar.hrss.sz1"
    assert erasure["owner_org"] == "HRSS"
    assert result.event_name == "RecordErased"
    assert result.event == erasure
    writes = result.writes()
    assert sorted(k.split("\x00")[1] for k in writes) == ["erasure", "record"]
    record = json.loads(writes["\x00record\x00si-1\x00"] or b"")
    # Everything the ledger held stays: hashes, version, history; only the marker is added.
    assert {k: v for k, v in record.items() if k != "erased"} == before.payload["record"]
    assert record["erased"] == erasure
    after = await records.evaluate(
        records.identity("registrar.hrss.sz1"),
        "GetRecord",
        {"record_id": "si-1", "include_history": True},
    )
    assert after.payload["record"]["erased"]["tx_id"] == result.tx_id
    assert [v["version"] for v in after.payload["history"]] == [1]
    assert "erased" not in after.payload["history"][0]


async def test_admin_of_owner_erases(records: LedgerHarness) -> None:
    result = await _erase(records, "admin.housing", "hr-1")
    assert result.ok, result.message
    assert result.payload["reason_hash"] is None


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("registrar.housing.sz1", "not_owner_department"),
        ("admin.housing", "not_owner_department"),
        ("officer.hrss.sz1", "erase_forbidden"),
        ("auditor.audit.sz1", "erase_forbidden"),
    ],
)
async def test_others_may_not_erase(records: LedgerHarness, who: str, code: str) -> None:
    result = await _erase(records, who, "si-1")
    assert (result.status, result.code) == (403, code)
    assert result.writes() == {}


async def test_twice_is_a_conflict_and_unknown_is_not_found(records: LedgerHarness) -> None:
    assert (await _erase(records, "registrar.hrss.sz1", "si-1")).ok
    again = await _erase(records, "registrar.hrss.sz1", "si-1")
    assert (again.status, again.code) == (409, "record_erased")
    missing = await _erase(records, "registrar.hrss.sz1", "si-404")
    assert (missing.status, missing.code) == (404, "record_not_found")


async def test_bad_reason_hash_refused(records: LedgerHarness) -> None:
    result = await _erase(records, "registrar.hrss.sz1", "si-1", reason_hash="plain words")
    assert result.status == 400
    assert "plain words" not in result.message


async def test_erased_record_cannot_be_amended(records: LedgerHarness, subject: str) -> None:
    assert (await _erase(records, "registrar.hrss.sz1", "si-1")).ok
    current = await records.evaluate(
        records.identity("registrar.hrss.sz1"), "GetRecord", {"record_id": "si-1"}
    )
    record = current.payload["record"]
    arg = {k: record[k] for k in ("record_id", "record_type", "schema_version", "region")}
    arg |= {"subject": subject, "tiers": record["tiers"]}
    amended = await records.submit(records.identity("registrar.hrss.sz1"), "AmendRecord", arg)
    assert (amended.status, amended.code) == (409, "record_erased")


async def test_access_to_erased_record_denied_with_reason(
    records: LedgerHarness, subject: str
) -> None:
    officer = records.identity("officer.education.sz1")
    ask = {
        "tier": "T1",
        "purpose": "school_enrolment",
        "record_types": ["social_insurance", "housing_rental"],
    }
    first = await records.request(officer, subject, **ask)
    assert [g["record_id"] for g in first.payload["granted"]] == ["hr-1", "si-1"]
    assert (await _erase(records, "registrar.hrss.sz1", "si-1")).ok
    later = await records.request(officer, subject, **ask)
    assert later.ok, later.message
    event = later.payload
    assert event["decision"] == "partial"
    assert [g["record_id"] for g in event["granted"]] == ["hr-1"]
    [denied] = event["denied"]
    assert denied["record_id"] == "si-1"
    assert denied["reason"] == "record_erased"
    assert denied["policy_ids"] == []
    assert "tiers" not in denied
    only = await records.request(
        officer, subject, **{**ask, "record_types": None}, record_ids=["si-1"]
    )
    assert only.payload["decision"] == "denied"
    assert only.payload["granted"] == []
