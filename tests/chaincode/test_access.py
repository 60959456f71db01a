"""RequestAccess: decisions, the committed access event, replay and signature checks, I4."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

from chaincode import CHAINCODE_NAME, AccessLedgerChaincode
from chaincode import governance as chaincode_governance
from crypto.consortium import Consortium
from network.engine.chaincode_host import ChaincodeHost
from policies.canonical import canonical_json
from tests.chaincode.harness import (
    CHENGDU,
    LedgerHarness,
    extra_officer,
    identity_number,
    subject_of,
)

JUSTIFICATION = hashlib.sha256(b"unconscious patient admitted from Chengdu").hexdigest()


@pytest.fixture
def subject(consortium: Consortium) -> str:
    return subject_of(consortium, 21)


@pytest.fixture
async def records(ledger: LedgerHarness, subject: str) -> LedgerHarness:
    """A migrant in Shenzhen: residence permit, rental, social insurance, contract, health."""
    for registrar, record_type, record_id, tiers in (
        ("registrar.publicsecurity.sz1", "residence_permit", "rp-1", ("T0", "T1", "T2")),
        ("registrar.housing.sz1", "housing_rental", "hr-1", ("T0", "T1", "T2")),
        ("registrar.hrss.sz1", "social_insurance", "si-1", ("T0", "T1", "T2")),
        ("registrar.hrss.sz1", "employment_contract", "ec-1", ("T0", "T1", "T2")),
        ("registrar.health.sz1", "health_record", "he-1", ("T0", "T1", "T2", "T3")),
    ):
        result = await ledger.register(
            registrar, record_type, subject, record_id=record_id, tiers=tiers
        )
        assert result.ok, result.message
    return ledger


def _access_keys(result) -> list[str]:
    return [k for k in result.writes() if k.startswith("\x00access\x00")]


async def test_school_enrolment_granted_and_recorded(records: LedgerHarness, subject: str) -> None:
    officer = records.identity("officer.education.sz1")
    result = await records.request(
        officer,
        subject,
        tier="T1",
        purpose="school_enrolment",
        record_types=["residence_permit", "housing_rental", "social_insurance"],
    )
    assert result.ok, result.message
    event = result.payload
    assert event["decision"] == "granted"
    assert event["event_id"] == result.tx_id
    assert [(g["record_id"], g["tiers"]) for g in event["granted"]] == [
        ("hr-1", ["T0", "T1"]),
        ("rp-1", ["T0", "T1"]),
        ("si-1", ["T0", "T1"]),
    ]
    assert all(g["policy_ids"] == ["school_enrolment.read_basic"] for g in event["granted"])
    assert event["denied"] == []
    assert event["officer"]["name"] == "officer.education.sz1"
    assert event["officer"]["msp_id"] == "EducationMSP"
    assert event["request_signature"]
    assert event["review"]["status"] == "none"
    assert result.event_name == "AccessDecided"
    assert result.event == event
    assert len(_access_keys(result)) == 1


async def test_denial_is_a_committed_success(records: LedgerHarness, subject: str) -> None:
    # An enrolment officer of Chengdu asking for Shenzhen records: wrong region.
    officer = records.identity("officer.education.cd1")
    result = await records.request(
        officer, subject, tier="T1", purpose="school_enrolment", record_types=["social_insurance"]
    )
    assert result.status == 200, result.message
    assert result.payload["decision"] == "denied"
    assert result.payload["granted"] == []
    [denied] = result.payload["denied"]
    assert denied["record_id"] == "si-1"
    assert denied["reason"] == "default_deny"
    assert len(_access_keys(result)) == 1

    auditor = records.identity("auditor.audit.sz1")
    listed = await records.evaluate(auditor, "ListAccessBySubject", {"subject": subject})
    assert [e["event_id"] for e in listed.payload["events"]] == [result.tx_id]


@pytest.mark.parametrize(
    ("officer", "kwargs", "reason"),
    [
        # tier above the officer's clearance (enrolment officers hold clearance 1)
        (
            "officer.education.sz1",
            {"tier": "T2", "purpose": "school_enrolment", "record_types": ["social_insurance"]},
            "forbid:guard.clearance_cap",
        ),
        # a purpose the department has no policy for
        (
            "officer.education.sz1",
            {
                "tier": "T1",
                "purpose": "social_insurance_transfer",
                "record_types": ["social_insurance"],
            },
            "default_deny",
        ),
        # wage-arrears inspection without a case reference
        (
            "officer.hrss.sz2",
            {"tier": "T2", "purpose": "wage_arrears", "record_types": ["employment_contract"]},
            "default_deny",
        ),
        # auditors never receive payloads
        (
            "auditor.audit.sz1",
            {"tier": "T0", "purpose": "audit", "record_types": ["social_insurance"]},
            "forbid:guard.auditors_never_read_payloads",
        ),
    ],
)
async def test_denials_carry_reasons(
    records: LedgerHarness, subject: str, officer: str, kwargs: dict, reason: str
) -> None:
    result = await records.request(records.identity(officer), subject, **kwargs)
    assert result.ok, result.message
    assert result.payload["decision"] == "denied"
    assert {d["reason"] for d in result.payload["denied"]} == {reason}


async def test_case_reference_enables_wage_arrears(records: LedgerHarness, subject: str) -> None:
    result = await records.request(
        records.identity("officer.hrss.sz2"),
        subject,
        tier="T2",
        purpose="wage_arrears",
        record_types=["employment_contract"],
        case_ref="SZ-LI-2026-0042",
    )
    assert result.payload["decision"] == "granted"
    assert result.payload["granted"][0]["tiers"] == ["T0", "T1", "T2"]


async def test_partial_decision_and_unknown_ids(records: LedgerHarness, subject: str) -> None:
    result = await records.request(
        records.identity("officer.education.sz1"),
        subject,
        tier="T1",
        purpose="school_enrolment",
        record_ids=["si-1", "ec-1", "no-such-record"],
    )
    event = result.payload
    assert event["decision"] == "partial"
    assert [g["record_id"] for g in event["granted"]] == ["si-1"]
    assert {d["record_id"]: d["reason"] for d in event["denied"]} == {
        "ec-1": "default_deny",
        "no-such-record": "record_not_found",
    }


async def test_record_of_another_subject_looks_missing(
    records: LedgerHarness, consortium: Consortium
) -> None:
    other = subject_of(consortium, 22)
    result = await records.request(
        records.identity("officer.education.sz1"),
        other,
        tier="T1",
        purpose="school_enrolment",
        record_ids=["si-1"],
    )
    assert result.payload["denied"] == [
        {"record_id": "si-1", "tier": "T1", "reason": "record_not_found", "policy_ids": []}
    ]


async def test_reused_nonce_refused(records: LedgerHarness, subject: str) -> None:
    officer = records.identity("officer.education.sz1")
    kwargs = {"tier": "T1", "purpose": "school_enrolment", "record_types": ["social_insurance"]}
    first = await records.request(officer, subject, nonce="nonce-0000000000000001", **kwargs)
    assert first.ok, first.message
    replay = await records.request(officer, subject, nonce="nonce-0000000000000001", **kwargs)
    assert replay.status == 409
    assert replay.code == "request_replayed"
    assert replay.writes() == {}
    # Exactly the same signed argument submitted again (a captured request) fails too.
    arg = records.access_request(officer, subject, nonce="nonce-0000000000000002", **kwargs)
    assert (await records.submit(officer, "RequestAccess", arg)).ok
    assert (await records.submit(officer, "RequestAccess", arg)).code == "request_replayed"
    # Nonces are per signer: another officer may use the same string.
    other = records.identity("officer.education.cd1")
    assert (await records.request(other, subject, nonce="nonce-0000000000000001", **kwargs)).ok


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
async def test_timestamp_outside_window_refused(
    records: LedgerHarness, subject: str, skew: timedelta
) -> None:
    officer = records.identity("officer.education.sz1")
    result = await records.request(
        officer,
        subject,
        tier="T1",
        purpose="school_enrolment",
        record_types=["social_insurance"],
        timestamp=records.now + skew,
    )
    assert result.status == 400
    assert result.code == "request_stale"
    assert result.writes() == {}
    inside = await records.request(
        officer,
        subject,
        tier="T1",
        purpose="school_enrolment",
        record_types=["social_insurance"],
        timestamp=records.now - timedelta(minutes=4),
    )
    assert inside.ok, inside.message


async def test_request_signed_by_someone_else_refused(records: LedgerHarness, subject: str) -> None:
    creator = records.identity("officer.education.sz1")
    signer = records.identity("officer.education.cd1")
    arg = records.access_request(
        signer, subject, tier="T1", purpose="school_enrolment", record_types=["social_insurance"]
    )
    result = await records.submit(creator, "RequestAccess", arg)
    assert result.status == 403
    assert result.code == "request_signature_invalid"
    assert result.writes() == {}


async def test_altered_request_refused(records: LedgerHarness, subject: str) -> None:
    officer = records.identity("officer.education.sz1")
    arg = json.loads(
        records.access_request(
            officer,
            subject,
            tier="T0",
            purpose="school_enrolment",
            record_types=["social_insurance"],
        )
    )
    arg["document"]["tier"] = "T1"
    result = await records.submit(officer, "RequestAccess", arg)
    assert result.code == "request_signature_invalid"


async def test_raw_identity_number_in_request_refused(records: LedgerHarness) -> None:
    result = await records.request(
        records.identity("officer.education.sz1"),
        identity_number(21),
        tier="T1",
        purpose="school_enrolment",
        record_types=["social_insurance"],
    )
    assert result.code == "subject_not_pseudonym"


async def test_citizens_and_admins_cannot_request(records: LedgerHarness, subject: str) -> None:
    for name in ("citizen.c1", "admin.education"):
        identity = records.identity(name)
        result = await records.request(
            identity,
            subject,
            tier="T0",
            purpose="school_enrolment",
            record_types=["social_insurance"],
        )
        assert result.status == 403, name


async def test_emergency_needs_justification_hash(records: LedgerHarness, subject: str) -> None:
    result = await records.request(
        records.identity("officer.health.sz1"),
        subject,
        tier="T2",
        purpose="emergency_care",
        record_types=["health_record"],
        emergency=True,
    )
    assert result.code == "invalid_argument"


async def test_break_glass_is_flagged_and_reviewed(records: LedgerHarness, subject: str) -> None:
    officer = records.identity("officer.health.sz1")
    result = await records.request(
        officer,
        subject,
        tier="T2",
        purpose="emergency_care",
        record_types=["health_record"],
        emergency=True,
        justification_hash=JUSTIFICATION,
    )
    event = result.payload
    assert event["decision"] == "granted"
    assert event["action"] == "emergency_read"
    assert event["emergency"] is True
    assert event["obligations"] == ["review_required"]
    assert event["granted"][0]["policy_ids"] == ["break_glass.emergency_care"]
    assert event["review"] == {
        "required": True,
        "status": "open",
        "reasons": ["review_required"],
        "contests": [],
        "outcomes": [],
    }
    assert event["request"]["justification_hash"] == JUSTIFICATION

    auditor = records.identity("auditor.audit.sz1")
    pending = await records.evaluate(auditor, "ListOpenReviews")
    assert [e["event_id"] for e in pending.payload["events"]] == [event["event_id"]]

    note = hashlib.sha256(b"confirmed with the hospital").hexdigest()
    review_arg = {"event_id": event["event_id"], "outcome": "justified", "note_hash": note}
    not_auditor = await records.submit(records.identity("admin.audit"), "ReviewAccess", review_arg)
    assert not_auditor.status == 403
    reviewed = await records.submit(auditor, "ReviewAccess", review_arg)
    assert reviewed.ok, reviewed.message
    assert reviewed.payload["review"]["status"] == "closed"
    assert reviewed.payload["review"]["outcomes"][0]["outcome"] == "justified"
    assert reviewed.event_name == "AccessReviewed"

    assert (await records.evaluate(auditor, "ListOpenReviews")).payload["events"] == []
    again = await records.submit(auditor, "ReviewAccess", review_arg)
    assert again.code == "review_not_open"
    stored = await records.evaluate(auditor, "GetAccessEvent", {"event_id": event["event_id"]})
    assert stored.payload["review"]["status"] == "closed"
    assert stored.payload["granted"] == event["granted"]  # the decision itself never changes


async def test_break_glass_still_capped_by_clearance(records: LedgerHarness, subject: str) -> None:
    result = await records.request(
        records.identity("officer.health.cd1"),  # clearance 2
        subject,
        tier="T3",
        purpose="emergency_care",
        record_types=["health_record"],
        emergency=True,
        justification_hash=JUSTIFICATION,
    )
    assert result.payload["decision"] == "denied"
    assert result.payload["review"]["status"] == "none"


async def test_same_request_same_decision_and_rwset(records: LedgerHarness, subject: str) -> None:
    """I4: the same proposal on the same state gives byte-identical results, cache or not."""
    officer = records.identity("officer.education.sz1")
    arg = records.access_request(
        officer,
        subject,
        tier="T1",
        purpose="school_enrolment",
        record_ids=["rp-1", "si-1", "he-1"],
    )
    proposal = records.proposal(officer, "RequestAccess", arg)
    first = await records.simulate(proposal)
    second = await records.simulate(proposal)
    chaincode_governance._bundles.clear()
    fresh_host = ChaincodeHost(AccessLedgerChaincode(), name=CHAINCODE_NAME)
    third = await records.simulate(proposal, fresh_host)
    assert first.payload["decision"] == "partial"
    for other in (second, third):
        assert bytes(other.simulation.response.payload) == bytes(first.simulation.response.payload)
        assert other.simulation.rwset_bytes == first.simulation.rwset_bytes
        assert other.simulation.event_bytes == first.simulation.event_bytes


async def test_no_matching_records_still_logged(
    ledger: LedgerHarness, consortium: Consortium
) -> None:
    nobody = subject_of(consortium, 29)
    result = await ledger.request(
        ledger.identity("officer.education.sz1"),
        nobody,
        tier="T1",
        purpose="school_enrolment",
        record_types=["social_insurance"],
    )
    assert result.ok
    assert result.payload["decision"] == "denied"
    assert result.payload["granted"] == result.payload["denied"] == []
    assert len(_access_keys(result)) == 1


async def test_state_holds_no_identity_number(records: LedgerHarness, subject: str) -> None:
    """I1: after a busy ledger, no resident identity number appears anywhere in state."""
    await records.request(
        records.identity("officer.education.sz1"),
        subject,
        tier="T1",
        purpose="school_enrolment",
        record_types=["social_insurance"],
    )
    number = identity_number(21)
    rows = records.db.get_state_range(CHAINCODE_NAME, "", "\U0010ffff", limit=10_000)
    assert rows
    for row in rows:
        assert number.encode() not in row.value
        assert number not in row.key


async def test_social_insurance_transfer_from_another_region(
    records: LedgerHarness, subject: str, consortium: Consortium
) -> None:
    # The demo roster has no social-security officer; one is issued by HRSS's CA in Chengdu.
    transfer = extra_officer(consortium, "ss.hrss.cd9", "HRSS", "social_security_officer", CHENGDU)
    result = await records.request(
        transfer,
        subject,
        tier="T2",
        purpose="social_insurance_transfer",
        record_types=["social_insurance", "employment_contract"],
    )
    assert result.payload["decision"] == "partial"
    assert [g["record_id"] for g in result.payload["granted"]] == ["si-1"]
    assert result.payload["granted"][0]["region"] != result.payload["officer"]["region"]
    assert [d["record_id"] for d in result.payload["denied"]] == ["ec-1"]


def _range_reads(result) -> int:
    """How many index keys the simulation's range queries handed out (Fabric's raw reads)."""
    count = 0
    for ns in result.simulation.rwset.ns_rwset:
        for query in kv_rwset_pb2.KVRWSet.FromString(ns.rwset).range_queries_info:
            count += len(query.raw_reads.kv_reads)
    return count


async def test_event_lists_stop_after_the_page(records: LedgerHarness, subject: str) -> None:
    # More events than one state-iterator batch (100): a short page must not read them all.
    officer = records.identity("officer.education.sz1")
    decided: list[str] = []
    for _ in range(105):
        result = await records.request(
            officer, subject, tier="T1", purpose="school_enrolment", record_ids=["rp-1"]
        )
        assert result.ok, result.message
        decided.append(result.payload["decided_at"])
    auditor = records.identity("auditor.audit.sz1")

    page = await records.evaluate(auditor, "ListAccessBySubject", {"subject": subject, "limit": 3})
    assert len(page.payload["events"]) == 3
    assert page.payload["truncated"] is True
    assert _range_reads(page) == 100  # the first batch only, not all 105 index keys

    everything = await records.evaluate(
        auditor, "ListAccessBySubject", {"subject": subject, "limit": 1000}
    )
    assert [e["decided_at"] for e in everything.payload["events"]] == decided
    assert everything.payload["truncated"] is False
    assert _range_reads(everything) == 105

    # A window ending before the 4th event stops there: 3 events, nothing truncated.
    window = await records.evaluate(
        auditor, "ListAccessBySubject", {"subject": subject, "to": decided[3], "limit": 1000}
    )
    assert [e["decided_at"] for e in window.payload["events"]] == decided[:3]
    assert window.payload["truncated"] is False
    assert _range_reads(window) == 100


async def test_event_lists_are_the_canonical_json_of_the_stored_events(
    records: LedgerHarness, subject: str
) -> None:
    # The lists splice the stored event bytes into the answer (codec.Listing): the answer must
    # be byte for byte the canonical JSON of the decoded page, events as GetAccessEvent has them,
    # including an event rewritten after its decision (a review outcome).
    health = records.identity("officer.health.sz1")
    glass = await records.request(
        health,
        subject,
        tier="T2",
        purpose="emergency_care",
        record_types=["health_record"],
        emergency=True,
        justification_hash=JUSTIFICATION,
    )
    auditor = records.identity("auditor.audit.sz1")
    note = hashlib.sha256(b"confirmed with the hospital").hexdigest()
    review = {"event_id": glass.payload["event_id"], "outcome": "justified", "note_hash": note}
    assert (await records.submit(auditor, "ReviewAccess", review)).ok
    officer = records.identity("officer.education.sz1")
    for tier in ("T1", "T3"):  # granted, then denied over clearance
        done = await records.request(
            officer, subject, tier=tier, purpose="school_enrolment", record_ids=["rp-1"]
        )
        assert done.ok, done.message

    day = records.now.strftime("%Y-%m-%dT00:00:00Z")
    next_day = (records.now + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    listings = [
        await records.evaluate(auditor, "ListAccessBySubject", {"subject": subject}),
        await records.evaluate(
            auditor,
            "ListAccessByOfficer",
            {
                "msp_id": health.msp_id,
                "cert_fingerprint": glass.payload["officer"]["cert_fingerprint"],
            },
        ),
        await records.evaluate(
            auditor, "ListAccessByDepartment", {"org": "Education", "from": day, "to": next_day}
        ),
    ]
    counts = []
    for listing in listings:
        assert listing.ok, listing.message
        raw = bytes(listing.simulation.response.payload)
        assert raw == canonical_json(json.loads(raw))
        for event in listing.payload["events"]:
            stored = await records.evaluate(
                auditor, "GetAccessEvent", {"event_id": event["event_id"]}
            )
            assert event == stored.payload
        counts.append(len(listing.payload["events"]))
    assert counts == [3, 1, 2]
    reviewed = listings[1].payload["events"][0]
    assert reviewed["review"]["status"] != "open"


async def test_a_department_listing_across_days_is_canonical_and_stops_at_the_limit(
    records: LedgerHarness, subject: str
) -> None:
    officer = records.identity("officer.education.sz1")
    auditor = records.identity("auditor.audit.sz1")
    first_day = records.now.strftime("%Y-%m-%dT00:00:00Z")
    decided: list[str] = []
    for day in range(2):
        for _ in range(2):
            done = await records.request(
                officer, subject, tier="T1", purpose="school_enrolment", record_ids=["rp-1"]
            )
            assert done.ok, done.message
            decided.append(done.payload["decided_at"])
        if day == 0:
            records.now += timedelta(days=1)
    after = (records.now + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    span = {"org": "Education", "from": first_day, "to": after}

    whole = await records.evaluate(auditor, "ListAccessByDepartment", span)
    raw = bytes(whole.simulation.response.payload)
    assert raw == canonical_json(json.loads(raw))
    assert [e["decided_at"] for e in whole.payload["events"]] == decided
    assert whole.payload["truncated"] is False

    # The first day fills the page exactly: the second day's first event only says "more".
    page = await records.evaluate(auditor, "ListAccessByDepartment", {**span, "limit": 2})
    assert [e["decided_at"] for e in page.payload["events"]] == decided[:2]
    assert page.payload["truncated"] is True
    raw = bytes(page.simulation.response.payload)
    assert raw == canonical_json(json.loads(raw))
