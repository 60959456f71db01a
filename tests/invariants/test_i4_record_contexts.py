"""I4 with per-record contexts: one request whose records are decided under different contexts.

The policy context of a record carries ``has_consent``, which depends on the
record's type: a citizen may consent to some record types and not others.
The chaincode and the auditor both evaluate a request's records in one batch
Cedar call with one context per record; a batch that used any one record's
context for all of them would give every record the same answer. None of the
demo's requests mixes consented and unconsented records, so this module
writes one through the same path the demo takes (SDK, RFC 9421 signatures,
the in-process gateway, the embedded network and chaincode):

* a registrar of each owning department registers a residence permit, a
  social-insurance record, a tax record and a rental for one person;
* the person's citizen credential is bound to them, and the citizen consents
  to PublicSecurity's points-based hukou scoring for two of the four types;
* the hukou officer asks for all four at T2 for ``points_hukou``.

The consented two must be granted by ``points_hukou.read_with_consent`` and
the other two denied ``default_deny`` -- in the gateway's answer and in the
committed event -- and both independent re-deciders (one Cedar call per
record, :mod:`tests.invariants.redecide`; the auditor's replay) must agree.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from audit.replay import ReplayConfig, ReplayOutcome, replay_ledger
from audit.sources import HomeSource
from crypto.consortium import Consortium, create_demo_consortium
from gateway.client import AccessResult, AsyncClient, operations_from
from gateway.demo import records as build
from gateway.demo.inprocess import IN_PROCESS_URL, in_process_gateway
from gateway.demo.population import Household, Person, PopulationGenerator
from tests.invariants.ledger import LedgerTx, ledger_transactions
from tests.invariants.redecide import Redecider

SEED = 2024
OFFICER = "officer.publicsecurity.sz1"  # hukou_officer, Shenzhen, clearance 2
CITIZEN = "citizen.c1"
PURPOSE = "points_hukou"
TIER = "T2"
CONSENTED = ("social_insurance", "tax_record")
NOT_CONSENTED = ("housing_rental", "residence_permit")
REQUESTED = tuple(sorted(CONSENTED + NOT_CONSENTED))
CONSENT_POLICY = "points_hukou.read_with_consent"


@dataclass(frozen=True)
class MixedRun:
    """The home written, the gateway's answer and the record id of each record type."""

    home: Path
    result: AccessResult
    record_types: dict[str, str]  # record id -> record type


def _applicant(today: date) -> tuple[Household, Person, build.Job, random.Random]:
    """The first household head with a job (so they hold all four record types)."""
    rnd = random.Random(SEED)
    for household in PopulationGenerator(SEED, today).population(10):
        job = build.job_for(household.head, household, rnd, today)
        if job is not None:
            return household, household.head, job, rnd
    raise AssertionError("no employed household head in the generated population")


async def _write(home: Path, today: date) -> MixedRun:
    consortium = Consortium.load(home)
    household, person, job, rnd = _applicant(today)
    fields: dict[str, tuple[str, dict[str, Any]]] = {
        "residence_permit": (
            "registrar.publicsecurity.sz1",
            build.residence_permit(person, household, job, rnd, today),
        ),
        "social_insurance": (
            "registrar.hrss.sz1",
            build.social_insurance(person, household, job, rnd, today),
        ),
        "tax_record": ("registrar.tax.sz1", build.tax_record(person, household, job, rnd, today)),
        "housing_rental": (
            "registrar.housing.sz1",
            build.housing_rental(person, household, rnd, today),
        ),
    }
    async with in_process_gateway(home, rate_limit_per_minute=0) as http:

        def client(name: str) -> AsyncClient:
            return AsyncClient(
                operations_from(consortium, name), base_url=IN_PROCESS_URL, http=http
            )

        record_types: dict[str, str] = {}
        subjects = set()
        for record_type, (registrar, values) in fields.items():
            receipt = await client(registrar).put_record(
                record_type, person.identity_number, values
            )
            record_types[receipt.record_id] = record_type
            subjects.add(receipt.subject)
        (subject,) = subjects
        certificate = consortium.identity(CITIZEN).cert_pem().decode("ascii")
        await client("registrar.civilaffairs.sz1").register_citizen(certificate, subject)
        await client(CITIZEN).grant_consent("PublicSecurity", PURPOSE, CONSENTED, max_tier=TIER)
        result = await client(OFFICER).request_access(subject, REQUESTED, TIER, PURPOSE)
    return MixedRun(home, result, record_types)


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> MixedRun:
    """A fresh home holding one access request over consented and unconsented records."""
    home = tmp_path_factory.mktemp("i4-record-contexts") / "home"
    create_demo_consortium(home, now=datetime.now(UTC))
    return asyncio.run(_write(home, date.today()))


def _access_tx(home: Path, tx_id: str) -> LedgerTx:
    (ltx,) = [t for t in ledger_transactions(home) if t.tx.tx_id == tx_id]
    assert ltx.valid
    assert ltx.function == "RequestAccess"
    return ltx


def _expected_granted(record_type: str) -> bool:
    return record_type in CONSENTED


def test_gateway_answer_differs_per_record_as_consent_does(mixed_run: MixedRun) -> None:
    result = mixed_run.result
    assert sorted(mixed_run.record_types.values()) == list(REQUESTED)
    assert result.decision == "partial"
    outcome = {
        mixed_run.record_types[r.record_id]: (r.granted, r.reason, r.policy_ids)
        for r in result.records
    }
    assert outcome == {
        "social_insurance": (True, None, (CONSENT_POLICY,)),
        "tax_record": (True, None, (CONSENT_POLICY,)),
        "housing_rental": (False, "default_deny", ()),
        "residence_permit": (False, "default_deny", ()),
    }
    # A grant really releases the consented records' payloads, up to the tier asked.
    for record in result.granted:
        assert record.tiers[-1] == TIER
        assert record.fields


def test_committed_event_records_a_decision_and_a_consent_per_record(mixed_run: MixedRun) -> None:
    event = _access_tx(mixed_run.home, mixed_run.result.tx_id).event()
    assert event is not None
    assert event["decision"] == "partial"
    committed = {
        mixed_run.record_types[entry["record_id"]]: (
            granted,
            entry["has_consent"],
            entry.get("reason"),
            tuple(entry["policy_ids"]),
        )
        for granted, key in ((True, "granted"), (False, "denied"))
        for entry in event[key]
    }
    assert committed == {
        t: (
            _expected_granted(t),
            _expected_granted(t),
            None if _expected_granted(t) else "default_deny",
            (CONSENT_POLICY,) if _expected_granted(t) else (),
        )
        for t in REQUESTED
    }


def test_one_cedar_call_per_record_re_decides_the_event(mixed_run: MixedRun) -> None:
    results = {r.tx_id: r for r in Redecider().run(ledger_transactions(mixed_run.home))}
    redecided = results[mixed_run.result.tx_id]
    assert redecided.decision == "partial"
    assert redecided.mismatches == []


def _audit(home: Path) -> ReplayOutcome:
    with HomeSource(home) as source:
        return replay_ledger(
            source, ReplayConfig(stores=home / "stores"), now=datetime.now().astimezone()
        )


def test_the_auditors_replay_agrees_record_by_record(mixed_run: MixedRun) -> None:
    outcome = _audit(mixed_run.home)
    assert outcome.report.findings == []
    (event,) = [e for e in outcome.events if e.event_id == mixed_run.result.event_id]
    assert outcome.report.access["decisions_rechecked"] == len(REQUESTED)
    seen = {
        mixed_run.record_types[r.record_id]: (r.granted, r.has_consent, r.policy_ids)
        for r in event.records
    }
    assert seen == {
        t: (_expected_granted(t), _expected_granted(t), (CONSENT_POLICY,) * _expected_granted(t))
        for t in REQUESTED
    }
