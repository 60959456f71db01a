"""AddDepartment: a strict majority of the current departments' admins onboard a new one."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chaincode import LedgerConfig
from chaincode.departments import department_approval
from chaincode.ledger import CONFIG_KEY
from crypto.ca import CertificateAuthority
from crypto.certificates import certificate_to_pem
from crypto.consortium import Consortium
from crypto.identity import Identity, IdentityKind
from crypto.onboarding import add_department
from policies.departments import (
    DEPARTMENT_APPROVAL_PREFIX,
    DepartmentError,
    department_digest,
    department_document,
    department_signed_bytes,
    verify_department_approvals,
)
from policies.errors import ApprovalError, InsufficientApprovalsError
from policies.governance import Approval
from tests.chaincode.harness import DEPARTMENT_ADMINS, SHENZHEN, LedgerHarness, extra_officer

NEW_OFFICER = "officer.transport.sz1"


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory, demo_home: Path, demo_now: datetime) -> Path:
    """A copy of the demo home to which crypto.consortium.add_department added Transport."""
    home = tmp_path_factory.mktemp("grown") / "home"
    shutil.copytree(demo_home, home)
    add_department(home, org="Transport", region=SHENZHEN, officer_role="caseworker", now=demo_now)
    return home


@pytest.fixture(scope="module")
def members(grown: Path) -> Consortium:
    return Consortium.load(grown)


@pytest.fixture
async def ledger(
    tmp_path: Path, members: Consortium, config: LedgerConfig, demo_now: datetime
) -> AsyncIterator[LedgerHarness]:
    """Initialised with the eight demo departments only; knows Transport's identities."""
    assert len(config.departments) == 8
    harness = LedgerHarness(tmp_path / "ledger.sqlite", members, demo_now + timedelta(hours=1))
    init = await harness.submit(
        harness.identity("admin.publicsecurity"), "InitLedger", config.to_json()
    )
    assert init.ok, init.message
    yield harness
    harness.close()


def _department(consortium: Consortium, org: str = "Transport") -> dict[str, Any]:
    spec = consortium.org(org)
    return {
        "org": spec.name,
        "msp_id": spec.msp_id,
        "root_certs": [certificate_to_pem(c).decode() for c in consortium.org_ca_certs(org)],
    }


def _arg(department: dict[str, Any], signers: Sequence[Identity]) -> dict[str, Any]:
    return {
        "department": department,
        "approvals": [department_approval(department, s) for s in signers],
    }


def _admins(harness: LedgerHarness, count: int) -> list[Identity]:
    return [harness.identity(name) for name in DEPARTMENT_ADMINS[:count]]


def _rogue_admin(name: str, org: str, msp_id: str, domain: str, now: datetime) -> Identity:
    """An admin certificate from a CA that merely looks like a department's."""
    ca = CertificateAuthority.create(org=org, msp_id=msp_id, domain=domain, now=now)
    cert, key = ca.issue(common_name=name, node_ou="admin", now=now)
    return Identity(name, IdentityKind.ADMIN, org, msp_id, cert, key)


def _new_root(now: datetime, name: str = "water") -> str:
    ca = CertificateAuthority.create(
        org=name.title(), msp_id=f"{name.title()}MSP", domain=f"{name}.gov.example", now=now
    )
    return certificate_to_pem(ca.certificate).decode()


async def _register_key(harness: LedgerHarness, name: str) -> Any:
    key = base64.b64encode(harness.consortium.encryption_public_key(name)).decode()
    return await harness.submit(
        harness.identity(name), "RegisterEncryptionKey", {"public_key": key}
    )


async def test_a_majority_adds_the_department_and_its_identities_are_accepted(
    ledger: LedgerHarness, members: Consortium
) -> None:
    before = await _register_key(ledger, NEW_OFFICER)
    assert before.status == 403
    assert "not a department" in before.message

    department = _department(members)
    result = await ledger.submit(
        ledger.identity("admin.hrss"), "AddDepartment", _arg(department, _admins(ledger, 5))
    )
    assert result.ok, result.message
    payload = result.payload
    assert payload["department"]["org"] == "Transport"
    assert payload["department"]["msp_id"] == "TransportMSP"
    assert payload["department_hash"] == department_digest(department)
    assert payload["approved_by"] == sorted(
        ["PublicSecurity", "HRSS", "Housing", "Education", "Health"]
    )
    assert payload["approvals_required"] == 5
    assert payload["departments"] == 9
    assert payload["added_by"]["name"] == "admin.hrss"
    assert result.event_name == "DepartmentAdded"
    assert result.event == payload
    stored = json.loads(result.writes()[CONFIG_KEY] or b"")
    config = LedgerConfig.from_dict(stored)
    assert config.orgs[-1] == "Transport"
    assert config.department("Transport").root_certs == tuple(members.org_ca_certs("Transport"))
    assert config.orgs[:8] == tuple(name for name, _ in _demo_departments(members))

    after = await _register_key(ledger, NEW_OFFICER)
    assert after.ok, after.message
    assert after.payload["msp_id"] == "TransportMSP"
    assert after.payload["org"] == "Transport"
    # The existing departments' identities are still identified as before.
    assert (await _register_key(ledger, "officer.tax.sz1")).ok


def _demo_departments(consortium: Consortium) -> list[tuple[str, str]]:
    return [(o.name, o.msp_id) for o in consortium.orgs() if not o.is_orderer][:8]


async def test_four_of_eight_is_not_a_majority(ledger: LedgerHarness, members: Consortium) -> None:
    result = await ledger.submit(
        ledger.identity("admin.hrss"),
        "AddDepartment",
        _arg(_department(members), _admins(ledger, 4)),
    )
    assert result.status == 403
    assert result.code == "approvals_insufficient"
    assert "4 of 8" in result.message
    assert "5 required" in result.message
    assert result.writes() == {}
    assert (await _register_key(ledger, NEW_OFFICER)).status == 403


async def test_one_department_counts_once(
    ledger: LedgerHarness, members: Consortium, consortium: Consortium
) -> None:
    department = _department(members)
    second_tax_admin = extra_officer(
        consortium, "admin2.tax", "Tax", "department_admin", node_ou="admin"
    )
    signers = [*_admins(ledger, 4), ledger.identity("admin.hrss"), second_tax_admin]
    assert {s.org for s in signers} == {"PublicSecurity", "HRSS", "Housing", "Education", "Tax"}
    result = await ledger.submit(
        ledger.identity("admin.hrss"), "AddDepartment", _arg(department, signers)
    )
    assert result.ok, result.message
    # Six approvals, five departments: HRSS twice, Tax through two different admins.
    assert result.payload["approved_by"] == sorted(
        ["PublicSecurity", "HRSS", "Housing", "Education", "Tax"]
    )


async def test_duplicates_do_not_make_a_majority(
    ledger: LedgerHarness, members: Consortium
) -> None:
    signers = [*_admins(ledger, 4), *_admins(ledger, 4)]
    result = await ledger.submit(
        ledger.identity("admin.hrss"), "AddDepartment", _arg(_department(members), signers)
    )
    assert result.code == "approvals_insufficient"
    assert "4 of 8" in result.message


@pytest.mark.parametrize("bad", ["officer", "registrar", "foreign", "look_alike", "newcomer"])
async def test_an_invalid_approval_refuses_the_whole_call(
    ledger: LedgerHarness, members: Consortium, demo_now: datetime, bad: str
) -> None:
    department = _department(members)
    intruder = {
        "officer": ledger.identity("officer.tax.sz1"),
        "registrar": ledger.identity("registrar.housing.sz1"),
        "foreign": _rogue_admin("admin.rogue", "Rogue", "RogueMSP", "rogue.example", demo_now),
        # Same subject names as Tax's CA and admin, different keys: the pinned root decides.
        "look_alike": _rogue_admin("admin.tax", "Tax", "TaxMSP", "tax.gov.example", demo_now),
        # The department being added is not a current department.
        "newcomer": ledger.identity("admin.transport"),
    }[bad]
    arg = _arg(department, [*_admins(ledger, 6), intruder])
    result = await ledger.submit(ledger.identity("admin.hrss"), "AddDepartment", arg)
    assert result.status == 403
    assert result.code == "approval_invalid"
    assert "approval 6" in result.message
    assert result.writes() == {}


async def test_a_signature_for_another_department_is_refused(
    ledger: LedgerHarness, members: Consortium
) -> None:
    department = _department(members)
    other = {**department, "msp_id": "TransportBureauMSP"}
    arg = _arg(department, _admins(ledger, 5))
    arg["approvals"][2] = department_approval(other, ledger.identity("admin.housing"))
    result = await ledger.submit(ledger.identity("admin.hrss"), "AddDepartment", arg)
    assert result.code == "approval_invalid"
    assert "Housing admin signature is invalid" in result.message


async def test_only_an_admin_submits(ledger: LedgerHarness, members: Consortium) -> None:
    arg = _arg(_department(members), _admins(ledger, 8))
    result = await ledger.submit(ledger.identity("officer.hrss.sz1"), "AddDepartment", arg)
    assert result.status == 403
    assert result.code == "forbidden"
    newcomer = await ledger.submit(ledger.identity("admin.transport"), "AddDepartment", arg)
    assert newcomer.status == 403
    assert "not a department" in newcomer.message


@pytest.mark.parametrize(
    "change",
    [
        {"org": "Housing", "msp_id": "HousingMSP"},
        {"org": "Housing", "msp_id": "NewHousingMSP"},
        {"org": "housing", "msp_id": "LowerHousingMSP"},
        {"org": "Transport", "msp_id": "TaxMSP"},
        {"org": "Transport", "msp_id": "Health"},
    ],
)
async def test_an_existing_department_is_refused(
    ledger: LedgerHarness, members: Consortium, change: dict[str, str]
) -> None:
    department = {**_department(members), **change}
    result = await ledger.submit(
        ledger.identity("admin.hrss"), "AddDepartment", _arg(department, _admins(ledger, 6))
    )
    assert result.status == 409
    assert result.code == "department_exists"


async def test_a_current_root_is_refused(ledger: LedgerHarness, members: Consortium) -> None:
    department = {**_department(members), "root_certs": _department(members, "Tax")["root_certs"]}
    result = await ledger.submit(
        ledger.identity("admin.hrss"), "AddDepartment", _arg(department, _admins(ledger, 6))
    )
    assert result.status == 409
    assert result.code == "root_ca_in_use"


async def test_adding_twice_is_refused(ledger: LedgerHarness, members: Consortium) -> None:
    arg = _arg(_department(members), _admins(ledger, 5))
    assert (await ledger.submit(ledger.identity("admin.hrss"), "AddDepartment", arg)).ok
    again = await ledger.submit(ledger.identity("admin.hrss"), "AddDepartment", arg)
    assert again.code == "department_exists"


def _malformed(members: Consortium, demo_now: datetime) -> dict[str, Any]:
    good = _department(members)
    officer_pem = certificate_to_pem(members.identity("officer.tax.sz1").certificate).decode()
    return {
        "missing root_certs": {"org": "Transport", "msp_id": "TransportMSP"},
        "unknown member": {**good, "region": SHENZHEN},
        "dash in org": {**good, "org": "Road-Transport"},
        "underscore in msp_id": {**good, "msp_id": "Transport_MSP"},
        "org not a string": {**good, "org": 7},
        "no roots": {**good, "root_certs": []},
        "roots not a list": {**good, "root_certs": good["root_certs"][0]},
        "not PEM": {**good, "root_certs": ["-----BEGIN CERTIFICATE-----\nAAAA"]},
        "identity certificate": {**good, "root_certs": [officer_pem]},
        "two certificates in one PEM": {**good, "root_certs": [good["root_certs"][0] * 2]},
        "the same root twice": {**good, "root_certs": good["root_certs"] * 2},
        "root not yet valid": {**good, "root_certs": [_new_root(demo_now + timedelta(days=30))]},
        "not an object": ["Transport"],
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing root_certs",
        "unknown member",
        "dash in org",
        "underscore in msp_id",
        "org not a string",
        "no roots",
        "roots not a list",
        "not PEM",
        "identity certificate",
        "two certificates in one PEM",
        "the same root twice",
        "root not yet valid",
        "not an object",
    ],
)
async def test_a_malformed_department_is_an_invalid_argument(
    ledger: LedgerHarness, members: Consortium, demo_now: datetime, case: str
) -> None:
    department = _malformed(members, demo_now)[case]
    arg = {
        "department": department,
        "approvals": [department_approval(_department(members), a) for a in _admins(ledger, 5)],
    }
    result = await ledger.submit(ledger.identity("admin.hrss"), "AddDepartment", arg)
    assert result.status == 400, result.message
    assert result.code == "invalid_argument"
    assert result.writes() == {}


@pytest.mark.parametrize(
    "arg",
    [
        {"approvals": []},
        {"department": {}, "approvals": [], "extra": 1},
        {"department": None, "approvals": "x"},
    ],
)
async def test_malformed_arguments_are_invalid(ledger: LedgerHarness, arg: dict[str, Any]) -> None:
    result = await ledger.submit(ledger.identity("admin.hrss"), "AddDepartment", arg)
    assert result.code == "invalid_argument"


async def test_approvals_must_be_well_formed(ledger: LedgerHarness, members: Consortium) -> None:
    department = _department(members)
    for approvals in (
        [],
        ["not an object"],
        [{"signer": "!!", "signature": "AA=="}],
        [{"signer": "AA==", "signature": "AA==", "extra": "x"}],
    ):
        arg = {"department": department, "approvals": approvals}
        result = await ledger.submit(ledger.identity("admin.hrss"), "AddDepartment", arg)
        assert result.status == 400, approvals
        assert result.code in {"invalid_argument", "approval_invalid"}


async def test_the_majority_follows_the_current_departments(
    ledger: LedgerHarness, members: Consortium, demo_now: datetime
) -> None:
    first = await ledger.submit(
        ledger.identity("admin.hrss"),
        "AddDepartment",
        _arg(_department(members), _admins(ledger, 5)),
    )
    assert first.ok, first.message
    water = {"org": "Water", "msp_id": "WaterMSP", "root_certs": [_new_root(demo_now)]}
    newcomer = ledger.identity("admin.transport")
    # Nine departments now: five are needed, and Transport's admin is one of them.
    four = await ledger.submit(newcomer, "AddDepartment", _arg(water, _admins(ledger, 4)))
    assert four.code == "approvals_insufficient"
    assert "4 of 9" in four.message
    five = await ledger.submit(
        newcomer, "AddDepartment", _arg(water, [*_admins(ledger, 4), newcomer])
    )
    assert five.ok, five.message
    assert five.payload["departments"] == 10
    assert "Transport" in five.payload["approved_by"]


async def test_endorsers_agree(ledger: LedgerHarness, members: Consortium) -> None:
    """Deterministic: the same proposal simulated twice gives identical bytes (I4)."""
    proposal = ledger.proposal(
        ledger.identity("admin.hrss"),
        "AddDepartment",
        _arg(_department(members), _admins(ledger, 5)),
    )
    one = await ledger.simulate(proposal)
    two = await ledger.simulate(proposal)
    assert one.ok
    assert one.simulation.rwset_bytes == two.simulation.rwset_bytes
    assert (
        one.simulation.response.SerializeToString() == two.simulation.response.SerializeToString()
    )
    assert one.simulation.event_bytes == two.simulation.event_bytes


# -- the approval format (policies.departments) --------------------------------------------


def test_signed_bytes_are_domain_separated_and_normalised(members: Consortium) -> None:
    department = _department(members)
    signed = department_signed_bytes(department)
    assert signed.startswith(DEPARTMENT_APPROVAL_PREFIX)
    assert signed == DEPARTMENT_APPROVAL_PREFIX + department_digest(department).encode()
    # The same certificate in other PEM spelling (CRLF line ends) is the same department.
    crlf = {**department, "root_certs": [p.replace("\n", "\r\n") for p in department["root_certs"]]}
    assert department_document(crlf) == department_document(department)
    assert department_signed_bytes(crlf) == signed
    assert department_signed_bytes({**department, "msp_id": "OtherMSP"}) != signed
    with pytest.raises(DepartmentError):
        department_document({**department, "org": "Bad Name"})


def test_verify_department_approvals_directly(
    members: Consortium, consortium: Consortium, demo_now: datetime
) -> None:
    department = _department(members)
    admins = {
        o: consortium.identities(kind=IdentityKind.ADMIN, org=o)[0]
        for o, _ in _demo_departments(consortium)
    }
    certs = {org: [admin.certificate] for org, admin in admins.items()}
    signed = [
        Approval.from_dict(department_approval(department, a)) for a in list(admins.values())[:5]
    ]
    assert len(verify_department_approvals(department, signed, certs, now=demo_now)) == 5
    with pytest.raises(InsufficientApprovalsError):
        verify_department_approvals(department, signed[:4], certs, now=demo_now)
    with pytest.raises(ApprovalError, match="not valid at this time"):
        verify_department_approvals(department, signed, certs, now=demo_now + timedelta(days=800))
    forged = Approval(signed[0].signer, signed[1].signature)
    with pytest.raises(ApprovalError, match="signature is invalid"):
        verify_department_approvals(department, [forged, *signed[1:]], certs, now=demo_now)
