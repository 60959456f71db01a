"""End to end on the embedded engine: endorse, order, validate and commit, with real blocks.

Register, request (granted and denied), consent, contest, review; the events
are visible to the subject's citizen and to auditors and invisible to another
citizen. A replayed nonce is refused at endorsement, and two copies of one
request endorsed concurrently cannot both commit (MVCC on the nonce key).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chaincode import CHAINCODE_NAME, AccessLedgerChaincode
from chaincode.signed import ACCESS_REQUEST_FORMAT, CONSENT_FORMAT, sign_document
from crypto.consortium import Consortium, create_demo_consortium
from crypto.identity import Identity
from network.engine.errors import CommitError, EndorseError
from network.engine.network import EmbeddedNetwork
from policies.bundle import PolicyBundle
from tests.chaincode.harness import (
    DEPARTMENT_ADMINS,
    approvals,
    content_address,
    extra_officer,
    ledger_config,
    subject_of,
)


class Clock:
    """The network's clock, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class Client:
    """Submit and evaluate AccessLedger functions on the network, decoding the JSON results."""

    def __init__(self, network: EmbeddedNetwork, consortium: Consortium, clock: Clock) -> None:
        self.network = network
        self.consortium = consortium
        self.clock = clock
        self._nonce = 0

    def id(self, name: str) -> Identity:
        return self.consortium.identity(name)

    async def submit(self, who: Identity, function: str, arg: Any) -> dict[str, Any]:
        text = arg if isinstance(arg, str) else json.dumps(arg)
        result = await self.network.submit(who, CHAINCODE_NAME, function, [text])
        self.clock.now += timedelta(seconds=1)
        return {"tx_id": result.tx_id, "block": result.block_number, **json.loads(result.payload)}

    async def evaluate(self, who: Identity, function: str, arg: Any = None) -> dict[str, Any]:
        args = [] if arg is None else [json.dumps(arg)]
        return json.loads(await self.network.evaluate(who, CHAINCODE_NAME, function, args))

    def nonce(self) -> str:
        self._nonce += 1
        return f"e2e-nonce-{self._nonce:08d}"

    def request(self, officer: Identity, subject: str, **fields: Any) -> str:
        document = {
            "format": ACCESS_REQUEST_FORMAT,
            "subject": subject,
            "nonce": fields.pop("nonce", None) or self.nonce(),
            "timestamp": self.clock.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            **fields,
        }
        return sign_document(document, officer.signer)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    start = datetime.now(UTC).replace(microsecond=0)
    consortium = create_demo_consortium(tmp_path / "home", now=start)
    clock = Clock(start + timedelta(minutes=5))
    network = EmbeddedNetwork.open(
        consortium.home, chaincodes={CHAINCODE_NAME: AccessLedgerChaincode}, clock=clock
    )
    async with network:
        c = Client(network, consortium, clock)
        admin = c.id("admin.publicsecurity")
        await c.submit(admin, "InitLedger", ledger_config(consortium).to_json())
        bundle = PolicyBundle.load_default(version=1)
        signers = [c.id(name) for name in DEPARTMENT_ADMINS[:5]]
        await c.submit(
            admin,
            "InstallPolicy",
            {"bundle": bundle.to_dict(), "approvals": approvals(bundle, signers)},
        )
        yield c


async def _register(
    c: Client, registrar: str, record_type: str, subject: str, record_id: str
) -> None:
    arg = {
        "record_id": record_id,
        "record_type": record_type,
        "schema_version": 1,
        "subject": subject,
        "region": "440300",
        "tiers": {
            t: {"content_address": content_address(record_id, t), "size": 64}
            for t in ("T0", "T1", "T2")
        },
    }
    await c.submit(c.id(registrar), "RegisterRecord", arg)


async def test_citizen_story_end_to_end(client: Client) -> None:
    c = client
    consortium = c.consortium
    subject = subject_of(consortium, 71)
    neighbour = subject_of(consortium, 72)
    await _register(c, "registrar.hrss.sz1", "social_insurance", subject, "si-1")
    await _register(c, "registrar.housing.sz1", "housing_rental", subject, "hr-1")
    await _register(c, "registrar.tax.sz1", "tax_record", neighbour, "tax-2")
    registrar = c.id("registrar.civilaffairs.sz1")
    for citizen, who in (("citizen.c1", subject), ("citizen.c2", neighbour)):
        await c.submit(
            registrar,
            "RegisterCitizen",
            {"certificate": c.id(citizen).cert_pem().decode(), "subject": who},
        )

    enrolment = c.id("officer.education.sz1")
    granted = await c.submit(
        enrolment,
        "RequestAccess",
        c.request(
            enrolment,
            subject,
            tier="T1",
            purpose="school_enrolment",
            record_types=["social_insurance", "housing_rental"],
        ),
    )
    assert granted["decision"] == "granted"
    too_high = await c.submit(
        enrolment,
        "RequestAccess",
        c.request(
            enrolment,
            subject,
            tier="T2",
            purpose="school_enrolment",
            record_types=["social_insurance"],
        ),
    )
    assert too_high["decision"] == "denied"  # committed, not an error

    # The citizen consents to points-based hukou scoring by PublicSecurity.
    c1 = c.id("citizen.c1")
    consent = {
        "format": CONSENT_FORMAT,
        "subject": subject,
        "grantee_org": "PublicSecurity",
        "purpose": "points_hukou",
        "record_types": ["social_insurance", "housing_rental"],
        "max_tier": "T2",
        "expires_at": (c.clock.now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nonce": c.nonce(),
        "timestamp": c.clock.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    await c.submit(c1, "GrantConsent", sign_document(consent, c1.signer))
    hukou = extra_officer(consortium, "hukou.publicsecurity.e2e", "PublicSecurity", "hukou_officer")
    scored = await c.submit(
        hukou,
        "RequestAccess",
        c.request(
            hukou,
            subject,
            tier="T2",
            purpose="points_hukou",
            record_types=["social_insurance", "housing_rental"],
        ),
    )
    assert scored["decision"] == "granted"
    assert all(g["has_consent"] for g in scored["granted"])

    # Contest the denied request; an auditor reviews it.
    reason = hashlib.sha256(b"why was my file read?").hexdigest()
    contested = await c.submit(
        c1, "ContestAccess", {"event_id": too_high["event_id"], "reason_hash": reason}
    )
    assert contested["review"]["status"] == "open"
    auditor = c.id("auditor.audit.sz1")
    open_reviews = await c.evaluate(auditor, "ListOpenReviews")
    assert [e["event_id"] for e in open_reviews["events"]] == [too_high["event_id"]]
    reviewed = await c.submit(
        auditor,
        "ReviewAccess",
        {"event_id": too_high["event_id"], "outcome": "justified", "note_hash": reason},
    )
    assert reviewed["review"]["status"] == "closed"

    # The subject's citizen sees both events; the neighbour's citizen sees none of them.
    mine = await c.evaluate(c1, "ListAccessBySubject", {"subject": subject})
    assert [e["event_id"] for e in mine["events"]] == [
        granted["event_id"],
        too_high["event_id"],
        scored["event_id"],
    ]
    assert mine["events"][1]["review"]["outcomes"][0]["outcome"] == "justified"
    c2 = c.id("citizen.c2")
    with pytest.raises(Exception, match="403"):
        await c.evaluate(c2, "ListAccessBySubject", {"subject": subject})
    assert (await c.evaluate(c2, "ListAccessBySubject", {"subject": neighbour}))["events"] == []
    audit_view = await c.evaluate(
        c.id("auditor.audit.cd1"), "ListAccessBySubject", {"subject": subject}
    )
    assert len(audit_view["events"]) == 3

    # The decisions are in committed blocks as AccessDecided chaincode events.
    decided = []
    async for info in c.network.chaincode_events(0, CHAINCODE_NAME):
        if info.event_name == "AccessDecided":
            decided.append(json.loads(info.payload)["event_id"])
        if info.tx_id == reviewed["tx_id"]:
            break
    assert decided == [granted["event_id"], too_high["event_id"], scored["event_id"]]


async def test_replay_refused_by_the_network(client: Client) -> None:
    c = client
    subject = subject_of(c.consortium, 73)
    await _register(c, "registrar.hrss.sz1", "social_insurance", subject, "si-3")
    officer = c.id("officer.education.sz1")
    arg = c.request(
        officer, subject, tier="T1", purpose="school_enrolment", record_types=["social_insurance"]
    )
    await c.submit(officer, "RequestAccess", arg)
    with pytest.raises(EndorseError, match="request_replayed"):
        await c.submit(officer, "RequestAccess", arg)


async def test_concurrent_copies_of_one_request_commit_once(client: Client) -> None:
    """Both copies are endorsed before either commits; MVCC on the nonce key keeps one."""
    c = client
    subject = subject_of(c.consortium, 74)
    await _register(c, "registrar.hrss.sz1", "social_insurance", subject, "si-4")
    officer = c.id("officer.education.sz1")
    arg = c.request(
        officer, subject, tier="T1", purpose="school_enrolment", record_types=["social_insurance"]
    )
    results = await asyncio.gather(
        c.submit(officer, "RequestAccess", arg),
        c.submit(officer, "RequestAccess", arg),
        return_exceptions=True,
    )
    committed = [r for r in results if isinstance(r, dict)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(committed) == 1
    assert len(failed) == 1
    assert isinstance(failed[0], CommitError)
    assert failed[0].validation_code_name == "MVCC_READ_CONFLICT"
    events = await c.evaluate(
        c.id("auditor.audit.sz1"), "ListAccessBySubject", {"subject": subject}
    )
    assert [e["event_id"] for e in events["events"]] == [committed[0]["event_id"]]
