"""Access-log queries by officer and by department, event visibility, the key registry."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from chaincode.caller import certificate_fingerprint
from crypto.consortium import Consortium
from crypto.identity import Identity
from tests.chaincode.harness import LedgerHarness, subject_of


def _iso(ledger_time) -> str:
    return ledger_time.strftime("%Y-%m-%dT%H:%M:%SZ")


def _officer_arg(identity: Identity, **extra: object) -> dict:
    return {
        "msp_id": identity.msp_id,
        "cert_fingerprint": certificate_fingerprint(identity.certificate),
        **extra,
    }


@dataclass
class Log:
    """A ledger with some access events: ``events`` holds (event id, decision time)."""

    ledger: LedgerHarness
    events: list[tuple[str, str]]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)


@pytest.fixture
async def log(ledger: LedgerHarness, consortium: Consortium) -> Log:
    """Three requests by Education officers and one by Health, spread over three days."""
    subject = subject_of(consortium, 41)
    await ledger.register("registrar.hrss.sz1", "social_insurance", subject, record_id="si-1")
    sz = ledger.identity("officer.education.sz1")
    cd = ledger.identity("officer.education.cd1")
    health = ledger.identity("officer.health.sz1")
    events: list[tuple[str, str]] = []
    for officer, purpose in (
        (sz, "school_enrolment"),
        (cd, "school_enrolment"),
        (health, "medical_settlement"),
        (sz, "school_enrolment"),
    ):
        result = await ledger.request(
            officer, subject, tier="T1", purpose=purpose, record_types=["social_insurance"]
        )
        assert result.ok, result.message
        events.append((result.tx_id, result.payload["decided_at"]))
        ledger.now += timedelta(days=1)
    return Log(ledger, events)


async def test_auditor_lists_an_officers_accesses(log: Log) -> None:
    sz = log.identity("officer.education.sz1")
    result = await log.evaluate(
        log.identity("auditor.audit.sz1"), "ListAccessByOfficer", _officer_arg(sz)
    )
    assert result.ok, result.message
    ids = [e["event_id"] for e in result.payload["events"]]
    assert ids == [log.events[0][0], log.events[3][0]]
    assert result.payload["truncated"] is False
    limited = await log.evaluate(
        log.identity("auditor.audit.sz1"), "ListAccessByOfficer", _officer_arg(sz, limit=1)
    )
    assert len(limited.payload["events"]) == 1
    assert limited.payload["truncated"] is True


async def test_department_admin_sees_only_own_officers(log: Log) -> None:
    sz = log.identity("officer.education.sz1")
    own = await log.evaluate(
        log.identity("admin.education"), "ListAccessByOfficer", _officer_arg(sz)
    )
    assert own.ok, own.message
    assert len(own.payload["events"]) == 2
    other = await log.evaluate(
        log.identity("admin.health"), "ListAccessByOfficer", _officer_arg(sz)
    )
    assert other.status == 403
    officer = await log.evaluate(sz, "ListAccessByOfficer", _officer_arg(sz))
    assert officer.status == 403


async def test_department_time_range(log: Log) -> None:
    events = log.events
    first_day = events[0][1]
    start = first_day[:10] + "T00:00:00Z"
    auditor = log.identity("auditor.audit.cd1")
    whole = await log.evaluate(
        auditor,
        "ListAccessByDepartment",
        {"org": "Education", "from": start, "to": _iso(log.now + timedelta(days=1))},
    )
    assert whole.ok, whole.message
    assert [e["event_id"] for e in whole.payload["events"]] == [
        events[0][0],
        events[1][0],
        events[3][0],
    ]

    # [second event, fourth event): only the second.
    window = await log.evaluate(
        auditor,
        "ListAccessByDepartment",
        {"org": "Education", "from": events[1][1], "to": events[3][1]},
    )
    assert [e["event_id"] for e in window.payload["events"]] == [events[1][0]]

    health = await log.evaluate(
        log.identity("admin.health"),
        "ListAccessByDepartment",
        {"org": "Health", "from": start, "to": _iso(log.now)},
    )
    assert [e["event_id"] for e in health.payload["events"]] == [events[2][0]]
    refused = await log.evaluate(
        log.identity("admin.health"),
        "ListAccessByDepartment",
        {"org": "Education", "from": start, "to": _iso(log.now)},
    )
    assert refused.status == 403
    too_long = await log.evaluate(
        auditor,
        "ListAccessByDepartment",
        {"org": "Education", "from": "2020-01-01T00:00:00Z", "to": "2022-01-01T00:00:00Z"},
    )
    assert too_long.code == "invalid_argument"
    backwards = await log.evaluate(
        auditor, "ListAccessByDepartment", {"org": "Education", "from": events[3][1], "to": start}
    )
    assert backwards.code == "invalid_argument"


async def test_access_event_visibility(log: Log) -> None:
    event_id = log.events[0][0]
    arg = {"event_id": event_id}
    assert (await log.evaluate(log.identity("officer.education.sz1"), "GetAccessEvent", arg)).ok
    # The owner department of the record (its key custodian works for it) sees it.
    assert (await log.evaluate(log.identity("registrar.hrss.cd1"), "GetAccessEvent", arg)).ok
    assert (await log.evaluate(log.identity("auditor.audit.sz1"), "GetAccessEvent", arg)).ok
    assert (await log.evaluate(log.identity("admin.education"), "GetAccessEvent", arg)).ok
    assert (
        await log.evaluate(log.identity("officer.education.cd1"), "GetAccessEvent", arg)
    ).status == 403
    assert (
        await log.evaluate(log.identity("officer.tax.sz1"), "GetAccessEvent", arg)
    ).status == 403
    missing = await log.evaluate(
        log.identity("auditor.audit.sz1"), "GetAccessEvent", {"event_id": "nope"}
    )
    assert missing.status == 404


async def test_encryption_key_bound_to_signing_identity(
    ledger: LedgerHarness, consortium: Consortium
) -> None:
    officer = ledger.identity("officer.education.sz1")
    public = consortium.encryption_public_key("officer.education.sz1")
    encoded = base64.b64encode(public).decode()
    registered = await ledger.submit(officer, "RegisterEncryptionKey", {"public_key": encoded})
    assert registered.ok, registered.message
    assert registered.payload["cert_fingerprint"] == certificate_fingerprint(officer.certificate)
    assert registered.event_name == "EncryptionKeyRegistered"

    looked_up = await ledger.evaluate(
        ledger.identity("registrar.hrss.sz1"), "GetEncryptionKey", _officer_arg(officer)
    )
    assert looked_up.ok
    assert base64.b64decode(looked_up.payload["public_key"]) == public

    # Rotation replaces the key.
    rotated = base64.b64encode(consortium.encryption_public_key("officer.tax.sz1")).decode()
    assert (await ledger.submit(officer, "RegisterEncryptionKey", {"public_key": rotated})).ok
    again = await ledger.evaluate(officer, "GetEncryptionKey", _officer_arg(officer))
    assert again.payload["public_key"] == rotated

    peer = await ledger.submit(
        ledger.identity("admin.tax"), "RegisterEncryptionKey", {"public_key": encoded}
    )
    assert peer.status == 403
    zero = await ledger.submit(
        officer, "RegisterEncryptionKey", {"public_key": base64.b64encode(bytes(32)).decode()}
    )
    assert zero.code == "invalid_argument"
    unknown = await ledger.evaluate(
        officer, "GetEncryptionKey", _officer_arg(ledger.identity("officer.tax.cd1"))
    )
    assert unknown.status == 404
