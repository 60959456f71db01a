"""Property tests of RequestAccess: one event per request; no permit, no grant.

The ledger holds records of every type about one subject (no consents). For
arbitrary well-formed requests by arbitrary officers, the committed write set
contains exactly one access event, and the records granted are exactly those
for which the anchored Cedar policy, asked one record at a time, permits the
read -- so a request that matches no permit policy is denied.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chaincode import LedgerConfig
from crypto.consortium import Consortium
from crypto.identity import Identity
from policies.bundle import PolicyBundle
from policies.requests import AccessContext, AccessRequest, Action, Principal, RecordResource
from policies.vocabulary import PURPOSES, TIERS
from tests.chaincode.harness import (
    CHENGDU,
    DEPARTMENT_ADMINS,
    SHENZHEN,
    LedgerHarness,
    approvals,
    extra_officer,
    subject_of,
)

RECORDS = (
    ("registrar.publicsecurity.sz1", "residence_permit", "rp-sz", SHENZHEN),
    ("registrar.publicsecurity.cd1", "residence_permit", "rp-cd", CHENGDU),
    ("registrar.housing.sz1", "housing_rental", "hr-sz", SHENZHEN),
    ("registrar.hrss.sz1", "social_insurance", "si-sz", SHENZHEN),
    ("registrar.hrss.cd1", "social_insurance", "si-cd", CHENGDU),
    ("registrar.hrss.sz1", "employment_contract", "ec-sz", SHENZHEN),
    ("registrar.education.sz1", "student_record", "st-sz", SHENZHEN),
    ("registrar.health.cd1", "health_record", "he-cd", CHENGDU),
    ("registrar.tax.sz1", "tax_record", "tx-sz", SHENZHEN),
)
OFFICERS = (
    "officer.publicsecurity.sz1",
    "officer.publicsecurity.sz2",
    "officer.hrss.sz1",
    "officer.hrss.sz2",
    "officer.education.sz1",
    "officer.education.cd1",
    "officer.health.sz1",
    "officer.health.cd1",
    "officer.tax.cd1",
    "registrar.hrss.sz1",
    "auditor.audit.sz1",
)
EXTRA = (
    ("inv.publicsecurity.sz9", "PublicSecurity", "investigator", SHENZHEN, 3),
    ("hukou.publicsecurity.sz9", "PublicSecurity", "hukou_officer", SHENZHEN, 2),
    ("ss.hrss.cd9", "HRSS", "social_security_officer", CHENGDU, 2),
    ("er.health.sz9", "Health", "emergency_physician", SHENZHEN, 3),
    ("cw.tax.sz9", "Tax", "caseworker", SHENZHEN, 3),
)


class Prepared:
    def __init__(self, harness: LedgerHarness, subject: str, officers: list[Identity]) -> None:
        self.harness = harness
        self.subject = subject
        self.officers = officers


@pytest.fixture(scope="module")
def prepared(
    tmp_path_factory: pytest.TempPathFactory,
    consortium: Consortium,
    demo_now: datetime,
    config: LedgerConfig,
    bundle: PolicyBundle,
) -> Iterator[Prepared]:
    path = tmp_path_factory.mktemp("properties") / "ledger.sqlite"
    harness = LedgerHarness(path, consortium, demo_now + timedelta(hours=1))
    subject = subject_of(consortium, 51)

    async def setup() -> None:
        admin = harness.identity("admin.hrss")
        assert (await harness.submit(admin, "InitLedger", config.to_json())).ok
        signers = [harness.identity(n) for n in DEPARTMENT_ADMINS[:5]]
        arg = {"bundle": bundle.to_dict(), "approvals": approvals(bundle, signers)}
        assert (await harness.submit(admin, "InstallPolicy", arg)).ok
        for registrar, record_type, record_id, region in RECORDS:
            result = await harness.register(
                registrar,
                record_type,
                subject,
                record_id=record_id,
                region=region,
                tiers=("T0", "T1", "T2", "T3"),
            )
            assert result.ok, result.message

    asyncio.run(setup())
    officers = [harness.identity(n) for n in OFFICERS]
    officers += [extra_officer(consortium, *spec) for spec in EXTRA]
    yield Prepared(harness, subject, officers)
    harness.close()


#: The purpose each officer's policy is written for (drawn half the time, to reach permits).
NATURAL_PURPOSE = (
    "criminal_investigation",
    "criminal_investigation",
    "social_insurance_transfer",
    "wage_arrears",
    "school_enrolment",
    "school_enrolment",
    "medical_settlement",
    "medical_settlement",
    "service_delivery",
    "service_delivery",
    "audit",
    "criminal_investigation",
    "points_hukou",
    "social_insurance_transfer",
    "emergency_care",
    "service_delivery",
)


@st.composite
def requests(draw: st.DrawFn) -> dict:
    officer = draw(st.integers(min_value=0, max_value=len(OFFICERS) + len(EXTRA) - 1))
    purpose = draw(st.one_of(st.sampled_from(PURPOSES), st.just(NATURAL_PURPOSE[officer])))
    return {
        "officer": officer,
        "purpose": purpose,
        "tier": draw(st.sampled_from(TIERS)),
        "record_types": draw(
            st.lists(
                st.sampled_from(sorted({r[1] for r in RECORDS})),
                min_size=1,
                max_size=4,
                unique=True,
            )
        ),
        "case_ref": draw(st.one_of(st.none(), st.just("CASE-2026-7"))),
        "emergency": draw(st.booleans()),
    }


def _oracle(bundle: PolicyBundle, officer: Identity, request: dict) -> set[str]:
    """Records the policy permits when asked one at a time (no consents exist)."""
    principal = Principal.from_attributes("oracle", officer.org, officer.attributes)
    action = Action.EMERGENCY_READ if request["emergency"] else Action.READ
    context = AccessContext(
        purpose=request["purpose"], case_ref=request["case_ref"], emergency=request["emergency"]
    )
    allowed = set()
    owners = {
        "residence_permit": "PublicSecurity",
        "housing_rental": "Housing",
        "social_insurance": "HRSS",
        "employment_contract": "HRSS",
        "student_record": "Education",
        "health_record": "Health",
        "tax_record": "Tax",
    }
    for _, record_type, record_id, region in RECORDS:
        if record_type not in request["record_types"]:
            continue
        resource = RecordResource(
            record_id, owners[record_type], record_type, request["tier"], region
        )
        decision = bundle.policy_set.evaluate(AccessRequest(principal, action, resource, context))
        if decision.allowed:
            allowed.add(record_id)
    return allowed


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_one_event_per_request_and_no_permit_means_denied(
    prepared: Prepared, bundle: PolicyBundle, request: dict
) -> None:
    harness = prepared.harness
    officer = prepared.officers[request["officer"]]
    arg = harness.access_request(
        officer,
        prepared.subject,
        tier=request["tier"],
        purpose=request["purpose"],
        record_types=request["record_types"],
        case_ref=request["case_ref"],
        emergency=request["emergency"],
        justification_hash="0" * 64 if request["emergency"] else None,
    )
    result = asyncio.run(harness.simulate(harness.proposal(officer, "RequestAccess", arg)))
    assert result.ok, result.message
    writes = result.writes()
    access_keys = [k for k in writes if k.startswith("\x00access\x00")]
    assert access_keys == ["\x00access\x00" + result.tx_id + "\x00"]
    stored = json.loads(writes[access_keys[0]])
    assert stored == result.payload

    expected = _oracle(bundle, officer, request)
    event("some records granted" if expected else "all denied")
    granted = {g["record_id"] for g in stored["granted"]}
    assert granted == expected
    matched = {r[2] for r in RECORDS if r[1] in request["record_types"]}
    assert granted | {d["record_id"] for d in stored["denied"]} == matched
    if not expected:
        assert stored["decision"] == "denied"
        assert stored["obligations"] == []
