"""RegisterRecord, AmendRecord, GetRecord, ListRecordsBySubject."""

from __future__ import annotations

import pytest

from crypto.consortium import Consortium
from tests.chaincode.harness import (
    CHENGDU,
    LedgerHarness,
    content_address,
    identity_number,
    subject_of,
)


@pytest.fixture
def subject(consortium: Consortium) -> str:
    return subject_of(consortium, 11)


async def test_owner_registrar_registers(ledger: LedgerHarness, subject: str) -> None:
    result = await ledger.register(
        "registrar.hrss.sz1", "social_insurance", subject, record_id="si-1"
    )
    assert result.ok, result.message
    record = result.payload
    assert record["record_id"] == "si-1"
    assert record["owner_org"] == "HRSS"
    assert record["version"] == 1
    assert record["subject"] == subject
    assert set(record["tiers"]) == {"T0", "T1", "T2"}
    assert record["policy"]["policy_ids"] == ["register.hrss"]
    assert record["registered"]["tx_id"] == result.tx_id
    assert result.event_name == "RecordRegistered"
    assert result.event["record_id"] == "si-1"


async def test_record_id_derived_from_tx_id(ledger: LedgerHarness, subject: str) -> None:
    result = await ledger.register("registrar.tax.sz1", "tax_record", subject)
    assert result.ok, result.message
    assert result.payload["record_id"] == f"rec-{result.tx_id}"


async def test_registrar_of_another_department_refused(ledger: LedgerHarness, subject: str) -> None:
    result = await ledger.register("registrar.housing.sz1", "social_insurance", subject)
    assert result.status == 403
    assert result.code == "not_owner_department"
    assert result.writes() == {}


async def test_non_registrar_officer_refused(ledger: LedgerHarness, subject: str) -> None:
    result = await ledger.register("officer.hrss.sz1", "social_insurance", subject)
    assert result.code == "not_registrar"


async def test_registrar_outside_record_region_refused_by_policy(
    ledger: LedgerHarness, subject: str
) -> None:
    result = await ledger.register(
        "registrar.hrss.sz1", "social_insurance", subject, region=CHENGDU
    )
    assert result.status == 403
    assert result.code == "register_denied"
    ok = await ledger.register("registrar.hrss.cd1", "social_insurance", subject, region=CHENGDU)
    assert ok.ok, ok.message


async def test_raw_identity_number_as_subject_refused(ledger: LedgerHarness) -> None:
    result = await ledger.register("registrar.hrss.sz1", "social_insurance", identity_number(5))
    assert result.status == 400
    assert result.code == "subject_not_pseudonym"
    assert identity_number(5) not in result.message  # I1: never echoed


async def test_identity_number_in_metadata_refused(ledger: LedgerHarness, subject: str) -> None:
    result = await ledger.register(
        "registrar.hrss.sz1",
        "social_insurance",
        subject,
        metadata={"holder": identity_number(6)},
    )
    assert result.code == "personal_data_refused"
    free_text = await ledger.register(
        "registrar.hrss.sz1", "social_insurance", subject, metadata={"name": "张三"}
    )
    assert free_text.code == "invalid_argument"
    fine = await ledger.register(
        "registrar.hrss.sz1",
        "social_insurance",
        subject,
        metadata={"status": "active", "since": "2024-01-01"},
    )
    assert fine.ok, fine.message


async def test_unknown_record_type_and_bad_hashes_refused(
    ledger: LedgerHarness, subject: str
) -> None:
    unknown = await ledger.register("registrar.hrss.sz1", "pet_licence", subject)
    assert unknown.code == "record_type_unknown"
    bad = await ledger.submit(
        ledger.identity("registrar.hrss.sz1"),
        "RegisterRecord",
        {
            "record_type": "social_insurance",
            "schema_version": 1,
            "subject": subject,
            "region": "440300",
            "tiers": {"T1": {"content_address": "XYZ", "size": 1}},
        },
    )
    assert bad.code == "invalid_argument"


async def test_duplicate_record_id_refused(ledger: LedgerHarness, subject: str) -> None:
    await ledger.register("registrar.hrss.sz1", "social_insurance", subject, record_id="dup-1")
    again = await ledger.register(
        "registrar.hrss.sz1", "social_insurance", subject, record_id="dup-1"
    )
    assert again.code == "record_exists"


def _amendment(subject: str, record_id: str, **changes: object) -> dict:
    arg = {
        "record_id": record_id,
        "record_type": "social_insurance",
        "schema_version": 1,
        "subject": subject,
        "region": "440300",
        "tiers": {
            "T0": {"content_address": content_address("v2", "T0"), "size": 120},
            "T2": {"content_address": content_address("v2", "T2"), "size": 300},
        },
        "metadata": {"status": "transferred"},
    }
    arg.update(changes)
    return arg


async def test_amend_keeps_history(ledger: LedgerHarness, subject: str) -> None:
    first = await ledger.register(
        "registrar.hrss.sz1", "social_insurance", subject, record_id="si-7"
    )
    amended = await ledger.submit(
        ledger.identity("registrar.hrss.sz1"), "AmendRecord", _amendment(subject, "si-7")
    )
    assert amended.ok, amended.message
    assert amended.payload["version"] == 2
    assert amended.payload["registered"] == first.payload["registered"]
    assert amended.payload["updated"]["tx_id"] == amended.tx_id
    assert amended.event_name == "RecordAmended"

    got = await ledger.evaluate(
        ledger.identity("officer.hrss.sz1"),
        "GetRecord",
        {"record_id": "si-7", "include_history": True},
    )
    assert got.ok, got.message
    assert got.payload["record"]["version"] == 2
    history = got.payload["history"]
    assert [v["version"] for v in history] == [1, 2]
    assert history[0]["tiers"] == first.payload["tiers"]
    assert history[1]["tiers"]["T2"]["size"] == 300


async def test_amend_by_another_department_refused(ledger: LedgerHarness, subject: str) -> None:
    await ledger.register("registrar.hrss.sz1", "social_insurance", subject, record_id="si-8")
    result = await ledger.submit(
        ledger.identity("registrar.tax.sz1"), "AmendRecord", _amendment(subject, "si-8")
    )
    assert result.code == "not_owner_department"


async def test_amend_cannot_change_subject(
    ledger: LedgerHarness, subject: str, consortium: Consortium
) -> None:
    await ledger.register("registrar.hrss.sz1", "social_insurance", subject, record_id="si-9")
    other = subject_of(consortium, 12)
    result = await ledger.submit(
        ledger.identity("registrar.hrss.sz1"), "AmendRecord", _amendment(other, "si-9")
    )
    assert result.code == "immutable_field"
    missing = await ledger.submit(
        ledger.identity("registrar.hrss.sz1"), "AmendRecord", _amendment(subject, "nope")
    )
    assert missing.status == 404


async def test_record_visibility(
    ledger: LedgerHarness, subject: str, consortium: Consortium
) -> None:
    await ledger.register("registrar.hrss.sz1", "social_insurance", subject, record_id="si-10")
    await ledger.register("registrar.tax.sz1", "tax_record", subject, record_id="tax-10")
    arg = {"record_id": "si-10"}
    assert (await ledger.evaluate(ledger.identity("officer.hrss.cd1"), "GetRecord", arg)).ok
    assert (await ledger.evaluate(ledger.identity("auditor.audit.sz1"), "GetRecord", arg)).ok
    other = await ledger.evaluate(ledger.identity("officer.education.sz1"), "GetRecord", arg)
    assert other.status == 403

    # Citizens see the records about themselves only.
    registrar = ledger.identity("registrar.civilaffairs.sz1")
    citizen = ledger.identity("citizen.c1")
    bound = await ledger.submit(
        registrar,
        "RegisterCitizen",
        {"certificate": citizen.cert_pem().decode(), "subject": subject},
    )
    assert bound.ok, bound.message
    assert (await ledger.evaluate(citizen, "GetRecord", arg)).ok
    listed = await ledger.evaluate(citizen, "ListRecordsBySubject", {"subject": subject})
    assert sorted(r["record_id"] for r in listed.payload["records"]) == ["si-10", "tax-10"]
    stranger = subject_of(consortium, 13)
    refused = await ledger.evaluate(citizen, "ListRecordsBySubject", {"subject": stranger})
    assert refused.status == 403

    # A department sees only its own records about the subject.
    hrss = await ledger.evaluate(
        ledger.identity("officer.hrss.sz1"), "ListRecordsBySubject", {"subject": subject}
    )
    assert [r["record_id"] for r in hrss.payload["records"]] == ["si-10"]
    audit = await ledger.evaluate(
        ledger.identity("auditor.audit.cd1"), "ListRecordsBySubject", {"subject": subject}
    )
    assert len(audit.payload["records"]) == 2
