"""Citizens: credential binding, consent (points-based hukou), contests, own-access queries."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from chaincode.signed import CONSENT_REVOCATION_FORMAT, sign_document
from crypto.consortium import Consortium
from crypto.identity import Identity
from tests.chaincode.harness import LedgerHarness, extra_officer, subject_of

HUKOU_TYPES = ["tax_record", "social_insurance", "residence_permit", "housing_rental"]


@pytest.fixture
def subject(consortium: Consortium) -> str:
    return subject_of(consortium, 31)


@pytest.fixture
def hukou_officer(consortium: Consortium) -> Identity:
    return extra_officer(consortium, "hukou.publicsecurity.sz9", "PublicSecurity", "hukou_officer")


async def _bind(ledger: LedgerHarness, citizen: str, subject: str) -> None:
    result = await ledger.submit(
        ledger.identity("registrar.civilaffairs.sz1"),
        "RegisterCitizen",
        {"certificate": ledger.identity(citizen).cert_pem().decode(), "subject": subject},
    )
    assert result.ok, result.message


@pytest.fixture
async def applicant(ledger: LedgerHarness, subject: str) -> LedgerHarness:
    """A points-based hukou applicant with the four record types it scores, bound to citizen.c1."""
    for registrar, record_type, record_id in (
        ("registrar.tax.sz1", "tax_record", "tax-1"),
        ("registrar.hrss.sz1", "social_insurance", "si-1"),
        ("registrar.publicsecurity.sz1", "residence_permit", "rp-1"),
        ("registrar.housing.sz1", "housing_rental", "hr-1"),
    ):
        result = await ledger.register(registrar, record_type, subject, record_id=record_id)
        assert result.ok, result.message
    await _bind(ledger, "citizen.c1", subject)
    return ledger


async def _grant(ledger: LedgerHarness, subject: str, **overrides: object):
    terms = {
        "grantee_org": "PublicSecurity",
        "purpose": "points_hukou",
        "record_types": HUKOU_TYPES,
        "max_tier": "T2",
        "expires_at": ledger.now + timedelta(days=30),
    }
    terms.update(overrides)
    citizen = ledger.identity("citizen.c1")
    return await ledger.submit(citizen, "GrantConsent", ledger.consent(citizen, subject, **terms))


async def _hukou(ledger: LedgerHarness, officer: Identity, subject: str):
    return await ledger.request(
        officer, subject, tier="T2", purpose="points_hukou", record_types=HUKOU_TYPES
    )


async def test_register_citizen(ledger: LedgerHarness, subject: str) -> None:
    citizen = ledger.identity("citizen.c2")
    arg = {"certificate": citizen.cert_pem().decode(), "subject": subject}
    wrong = await ledger.submit(ledger.identity("registrar.hrss.sz1"), "RegisterCitizen", arg)
    assert wrong.code == "not_registrar"
    registrar = ledger.identity("registrar.civilaffairs.sz1")
    bound = await ledger.submit(registrar, "RegisterCitizen", arg)
    assert bound.ok, bound.message
    assert bound.payload["subject"] == subject
    assert "certificate" not in bound.payload
    # The binding and its entry in the subject's index of credentials, nothing else.
    fingerprint = bound.payload["cert_fingerprint"]
    assert set(bound.writes()) == {
        f"\x00citizen\x00CivilAffairsMSP\x00{fingerprint}\x00",
        f"\x00subject_citizen\x00{subject}\x00CivilAffairsMSP\x00{fingerprint}\x00",
    }
    again = await ledger.submit(registrar, "RegisterCitizen", arg)
    assert again.code == "citizen_exists"
    officer_cert = {
        "certificate": ledger.identity("officer.tax.sz1").cert_pem().decode(),
        "subject": subject,
    }
    not_citizen = await ledger.submit(registrar, "RegisterCitizen", officer_cert)
    assert not_citizen.code == "not_citizen_credential"


async def test_consent_enables_points_hukou(
    applicant: LedgerHarness, subject: str, hukou_officer: Identity
) -> None:
    before = await _hukou(applicant, hukou_officer, subject)
    assert before.payload["decision"] == "denied"
    assert all(not d["has_consent"] for d in before.payload["denied"])

    granted = await _grant(applicant, subject)
    assert granted.ok, granted.message
    assert granted.payload["consent_id"] == granted.tx_id
    assert granted.event_name == "ConsentGranted"

    after = await _hukou(applicant, hukou_officer, subject)
    event = after.payload
    assert event["decision"] == "granted"
    assert sorted(g["record_id"] for g in event["granted"]) == ["hr-1", "rp-1", "si-1", "tax-1"]
    assert all(g["has_consent"] for g in event["granted"])
    assert {tuple(g["policy_ids"]) for g in event["granted"]} == {
        ("points_hukou.read_with_consent",)
    }


async def test_revocation_removes_consent(
    applicant: LedgerHarness, subject: str, hukou_officer: Identity
) -> None:
    consent_id = (await _grant(applicant, subject)).tx_id
    assert (await _hukou(applicant, hukou_officer, subject)).payload["decision"] == "granted"
    citizen = applicant.identity("citizen.c1")
    revocation = _revocation(applicant, citizen, consent_id)
    revoked = await applicant.submit(citizen, "RevokeConsent", revocation)
    assert revoked.ok, revoked.message
    assert revoked.payload["status"] == "revoked"
    assert (await _hukou(applicant, hukou_officer, subject)).payload["decision"] == "denied"
    twice = await applicant.submit(
        citizen, "RevokeConsent", _revocation(applicant, citizen, consent_id)
    )
    assert twice.code == "consent_revoked"


def _revocation(ledger: LedgerHarness, citizen: Identity, consent_id: str) -> str:
    document = {
        "format": CONSENT_REVOCATION_FORMAT,
        "consent_id": consent_id,
        "nonce": hashlib.sha256(f"{consent_id}{ledger.now}".encode()).hexdigest()[:32],
        "timestamp": ledger.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    return sign_document(document, citizen.signer)


async def test_expiry_removes_consent(
    applicant: LedgerHarness, subject: str, hukou_officer: Identity
) -> None:
    await _grant(applicant, subject, expires_at=applicant.now + timedelta(hours=1))
    assert (await _hukou(applicant, hukou_officer, subject)).payload["decision"] == "granted"
    applicant.now += timedelta(hours=2)
    assert (await _hukou(applicant, hukou_officer, subject)).payload["decision"] == "denied"


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_tier": "T1"},  # consent only up to T1; T2 asked
        {"grantee_org": "Housing"},  # consent for another department
        {"purpose": "school_enrolment"},  # consent for another purpose
        {"record_types": ["tax_record"]},  # covers one type only
    ],
)
async def test_consent_must_cover_the_read(
    applicant: LedgerHarness, subject: str, hukou_officer: Identity, overrides: dict
) -> None:
    assert (await _grant(applicant, subject, **overrides)).ok
    event = (await _hukou(applicant, hukou_officer, subject)).payload
    if "record_types" in overrides:
        assert [g["record_id"] for g in event["granted"]] == ["tax-1"]
        assert event["decision"] == "partial"
    else:
        assert event["decision"] == "denied"


async def test_consent_only_by_the_bound_citizen(
    applicant: LedgerHarness, subject: str, consortium: Consortium
) -> None:
    other_subject = subject_of(consortium, 32)
    c1 = applicant.identity("citizen.c1")
    for_someone_else = applicant.consent(
        c1,
        other_subject,
        grantee_org="PublicSecurity",
        purpose="points_hukou",
        record_types=HUKOU_TYPES,
        max_tier="T2",
        expires_at=applicant.now + timedelta(days=1),
    )
    assert (await applicant.submit(c1, "GrantConsent", for_someone_else)).status == 403
    unbound = applicant.identity("citizen.c3")
    arg = applicant.consent(
        unbound,
        subject,
        grantee_org="PublicSecurity",
        purpose="points_hukou",
        record_types=HUKOU_TYPES,
        max_tier="T2",
        expires_at=applicant.now + timedelta(days=1),
    )
    result = await applicant.submit(unbound, "GrantConsent", arg)
    assert result.code == "citizen_not_registered"
    # An expiry in the past is refused outright.
    past = await _grant(applicant, subject, expires_at=applicant.now - timedelta(minutes=1))
    assert past.code == "invalid_argument"


async def test_citizen_lists_only_their_own_accesses(
    applicant: LedgerHarness, subject: str, consortium: Consortium, hukou_officer: Identity
) -> None:
    other = subject_of(consortium, 33)
    await applicant.register("registrar.tax.sz1", "tax_record", other, record_id="tax-2")
    await _bind(applicant, "citizen.c2", other)
    mine = await _hukou(applicant, hukou_officer, subject)
    theirs = await _hukou(applicant, hukou_officer, other)

    c1, c2 = applicant.identity("citizen.c1"), applicant.identity("citizen.c2")
    listed = await applicant.evaluate(c1, "ListAccessBySubject", {"subject": subject})
    assert listed.ok, listed.message
    assert [e["event_id"] for e in listed.payload["events"]] == [mine.tx_id]
    event = listed.payload["events"][0]
    assert event["officer"]["org"] == "PublicSecurity"
    assert event["purpose"] == "points_hukou"

    refused = await applicant.evaluate(c1, "ListAccessBySubject", {"subject": other})
    assert refused.status == 403
    other_view = await applicant.evaluate(c2, "ListAccessBySubject", {"subject": other})
    assert [e["event_id"] for e in other_view.payload["events"]] == [theirs.tx_id]
    hidden = await applicant.evaluate(c2, "GetAccessEvent", {"event_id": mine.tx_id})
    assert hidden.status == 404

    auditor = applicant.identity("auditor.audit.cd1")
    assert (await applicant.evaluate(auditor, "ListAccessBySubject", {"subject": other})).ok
    officer = applicant.identity("officer.tax.sz1")
    assert (
        await applicant.evaluate(officer, "ListAccessBySubject", {"subject": other})
    ).status == 403


async def test_contest_opens_review_and_auditor_closes_it(
    applicant: LedgerHarness, subject: str, hukou_officer: Identity
) -> None:
    event_id = (await _hukou(applicant, hukou_officer, subject)).tx_id
    c1 = applicant.identity("citizen.c1")
    reason = hashlib.sha256(b"I never applied for hukou").hexdigest()
    contested = await applicant.submit(
        c1, "ContestAccess", {"event_id": event_id, "reason_hash": reason}
    )
    assert contested.ok, contested.message
    assert contested.payload["review"]["status"] == "open"
    assert contested.payload["review"]["reasons"] == ["contested"]
    assert contested.event_name == "AccessContested"
    assert reason in json.dumps(contested.payload)

    auditor = applicant.identity("auditor.audit.sz1")
    pending = await applicant.evaluate(auditor, "ListOpenReviews")
    assert [e["event_id"] for e in pending.payload["events"]] == [event_id]
    note = hashlib.sha256(b"applicant's own application").hexdigest()
    closed = await applicant.submit(
        auditor, "ReviewAccess", {"event_id": event_id, "outcome": "justified", "note_hash": note}
    )
    assert closed.ok, closed.message
    assert closed.payload["review"]["status"] == "closed"

    # Contesting again re-opens the review.
    again = await applicant.submit(
        c1, "ContestAccess", {"event_id": event_id, "reason_hash": reason}
    )
    assert again.payload["review"]["status"] == "open"
    assert len(again.payload["review"]["contests"]) == 2


async def test_contest_of_someone_elses_event_refused(
    applicant: LedgerHarness, subject: str, consortium: Consortium, hukou_officer: Identity
) -> None:
    event_id = (await _hukou(applicant, hukou_officer, subject)).tx_id
    await _bind(applicant, "citizen.c2", subject_of(consortium, 34))
    result = await applicant.submit(
        applicant.identity("citizen.c2"),
        "ContestAccess",
        {"event_id": event_id, "reason_hash": "ab" * 32},
    )
    assert result.status == 404
    free_text = await applicant.submit(
        applicant.identity("citizen.c1"),
        "ContestAccess",
        {"event_id": event_id, "reason_hash": "they looked at my file"},
    )
    assert free_text.code == "invalid_argument"


async def test_list_consents(applicant: LedgerHarness, subject: str) -> None:
    await _grant(applicant, subject)
    own = await applicant.evaluate(
        applicant.identity("citizen.c1"), "ListConsents", {"subject": subject}
    )
    assert [c["purpose"] for c in own.payload["consents"]] == ["points_hukou"]
    audit = await applicant.evaluate(
        applicant.identity("auditor.audit.sz1"), "ListConsents", {"subject": subject}
    )
    assert audit.ok
    officer = await applicant.evaluate(
        applicant.identity("officer.tax.sz1"), "ListConsents", {"subject": subject}
    )
    assert officer.status == 403
