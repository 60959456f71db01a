"""InitLedger and InstallPolicy: pinned departments, majority approval, anchored versions."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from chaincode import LedgerConfig
from chaincode.ledger import POLICY_BUNDLE, sequence_key
from crypto.ca import CertificateAuthority
from crypto.consortium import Consortium
from crypto.identity import Identity, IdentityKind
from network.engine.statedb import StateWrite, TxIndexEntry
from network.fabric.blocks import block_header_hash, new_block
from policies.bundle import PolicyBundle
from tests.chaincode.harness import (
    DEPARTMENT_ADMINS,
    SHENZHEN,
    LedgerHarness,
    approval,
    approvals,
    extra_officer,
    subject_of,
)


def _install_arg(bundle: PolicyBundle, signers: list) -> dict:
    return {"bundle": bundle.to_dict(), "approvals": approvals(bundle, signers)}


async def test_init_ledger_pins_departments_once(bare: LedgerHarness, config: LedgerConfig) -> None:
    admin = bare.identity("admin.hrss")
    result = await bare.submit(admin, "InitLedger", config.to_json())
    assert result.ok, result.message
    assert [d["org"] for d in result.payload["departments"]] == list(config.orgs)
    assert result.event_name == "LedgerInitialised"
    # No citizen is bound yet: the subject index of citizen credentials starts complete.
    assert result.writes() == {"config": result.writes()["config"], "citizen_index": b"1"}

    again = await bare.submit(admin, "InitLedger", config.to_json())
    assert again.status == 409
    assert again.code == "already_initialised"


async def test_init_ledger_runs_as_fabric_init_transaction(
    bare: LedgerHarness, config: LedgerConfig
) -> None:
    result = await bare.submit(
        bare.identity("admin.tax"), "InitLedger", config.to_json(), is_init=True
    )
    assert result.ok, result.message


async def test_init_ledger_needs_an_admin(bare: LedgerHarness, config: LedgerConfig) -> None:
    result = await bare.submit(bare.identity("registrar.hrss.sz1"), "InitLedger", config.to_json())
    assert result.status == 403
    assert result.writes() == {}


async def test_functions_refuse_before_init(bare: LedgerHarness) -> None:
    result = await bare.evaluate(bare.identity("admin.hrss"), "GetPolicy")
    assert result.code == "ledger_not_initialised"


async def test_creator_from_unknown_msp_refused(
    bare: LedgerHarness, consortium: Consortium, config: LedgerConfig
) -> None:
    await bare.submit(bare.identity("admin.hrss"), "InitLedger", config.to_json())
    orderer_admin = consortium.identity("admin.orderer")
    result = await bare.evaluate(orderer_admin, "GetPolicy")
    assert result.status == 403
    assert "not a department" in result.message


async def test_install_policy_with_four_of_eight_admins_refused(
    bare: LedgerHarness, config: LedgerConfig, bundle: PolicyBundle
) -> None:
    admin = bare.identity("admin.publicsecurity")
    await bare.submit(admin, "InitLedger", config.to_json())
    four = [bare.identity(n) for n in DEPARTMENT_ADMINS[:4]]
    result = await bare.submit(admin, "InstallPolicy", _install_arg(bundle, four))
    assert result.status == 403
    assert result.code == "approvals_insufficient"
    assert "4 of 8" in result.message
    # Nothing is anchored: access decisions are impossible.
    policy = await bare.evaluate(admin, "GetPolicy")
    assert policy.code == "policy_not_installed"


async def test_install_policy_with_five_of_eight_admins_accepted(
    bare: LedgerHarness, config: LedgerConfig, bundle: PolicyBundle
) -> None:
    admin = bare.identity("admin.publicsecurity")
    await bare.submit(admin, "InitLedger", config.to_json())
    five = [bare.identity(n) for n in DEPARTMENT_ADMINS[3:]]
    result = await bare.submit(admin, "InstallPolicy", _install_arg(bundle, five))
    assert result.ok, result.message
    meta = result.payload
    assert meta["version"] == 1
    assert meta["bundle_hash"] == bundle.bundle_hash
    assert meta["approved_by"] == sorted(["Education", "Health", "Tax", "CivilAffairs", "Audit"])
    assert meta["approvals_required"] == 5
    assert result.event_name == "PolicyInstalled"

    fetched = await bare.evaluate(
        bare.identity("registrar.tax.sz1"), "GetPolicy", {"include_bundle": True}
    )
    assert fetched.ok
    assert fetched.payload["policy"]["bundle_hash"] == bundle.bundle_hash
    assert PolicyBundle.from_dict(fetched.payload["bundle"]).bundle_hash == bundle.bundle_hash


async def test_two_admins_of_one_department_count_once(
    bare: LedgerHarness, consortium: Consortium, config: LedgerConfig, bundle: PolicyBundle
) -> None:
    admin = bare.identity("admin.publicsecurity")
    await bare.submit(admin, "InitLedger", config.to_json())
    second_ps_admin = extra_officer(
        consortium, "admin2.publicsecurity", "PublicSecurity", "department_admin", node_ou="admin"
    )
    signers = [bare.identity(n) for n in DEPARTMENT_ADMINS[:4]] + [second_ps_admin]
    result = await bare.submit(admin, "InstallPolicy", _install_arg(bundle, signers))
    assert result.code == "approvals_insufficient"


async def test_approval_by_a_non_admin_refused(
    bare: LedgerHarness, config: LedgerConfig, bundle: PolicyBundle
) -> None:
    admin = bare.identity("admin.publicsecurity")
    await bare.submit(admin, "InitLedger", config.to_json())
    signers = [bare.identity(n) for n in DEPARTMENT_ADMINS[:4]] + [
        bare.identity("registrar.tax.sz1")
    ]
    result = await bare.submit(admin, "InstallPolicy", _install_arg(bundle, signers))
    assert result.status == 403
    assert result.code == "approval_invalid"


async def test_forged_approval_refused(
    bare: LedgerHarness, config: LedgerConfig, bundle: PolicyBundle
) -> None:
    admin = bare.identity("admin.publicsecurity")
    await bare.submit(admin, "InitLedger", config.to_json())
    signers = [bare.identity(n) for n in DEPARTMENT_ADMINS[:5]]
    arg = _install_arg(bundle, signers)
    # The Tax admin's identity, but the signature is the Health admin's.
    forged = approval(bundle, bare.identity("admin.health"))
    arg["approvals"][4] = {
        "signer": approval(bundle, bare.identity("admin.tax")).to_dict()["signer"],
        "signature": forged.to_dict()["signature"],
    }
    result = await bare.submit(admin, "InstallPolicy", arg)
    assert result.status == 403
    assert result.code == "approval_invalid"


async def test_approval_for_another_version_refused(
    bare: LedgerHarness, config: LedgerConfig, bundle: PolicyBundle
) -> None:
    admin = bare.identity("admin.publicsecurity")
    await bare.submit(admin, "InitLedger", config.to_json())
    signers = [bare.identity(n) for n in DEPARTMENT_ADMINS[:5]]
    arg = {"bundle": bundle.with_version(2).to_dict(), "approvals": approvals(bundle, signers)}
    result = await bare.submit(admin, "InstallPolicy", arg)
    assert result.code == "approval_invalid"


async def test_install_policy_needs_an_admin_caller(
    ledger: LedgerHarness, bundle: PolicyBundle
) -> None:
    v2 = bundle.with_version(2)
    signers = [ledger.identity(n) for n in DEPARTMENT_ADMINS[:5]]
    result = await ledger.submit(
        ledger.identity("registrar.hrss.sz1"), "InstallPolicy", _install_arg(v2, signers)
    )
    assert result.status == 403


async def test_older_or_equal_version_refused(ledger: LedgerHarness, bundle: PolicyBundle) -> None:
    signers = [ledger.identity(n) for n in DEPARTMENT_ADMINS[:5]]
    result = await ledger.submit(
        ledger.identity("admin.hrss"), "InstallPolicy", _install_arg(bundle, signers)
    )
    assert result.code == "policy_version_stale"


async def test_events_record_the_policy_version_they_were_decided_under(
    ledger: LedgerHarness, consortium: Consortium, bundle: PolicyBundle
) -> None:
    subject = subject_of(consortium, 1)
    await ledger.register("registrar.hrss.sz1", "social_insurance", subject)
    officer = ledger.identity("officer.education.sz1")
    first = await ledger.request(
        officer, subject, tier="T1", purpose="school_enrolment", record_types=["social_insurance"]
    )
    assert first.payload["policy"] == {"version": 1, "bundle_hash": bundle.bundle_hash}

    v2 = bundle.with_version(2)
    signers = [ledger.identity(n) for n in DEPARTMENT_ADMINS[2:7]]
    installed = await ledger.submit(
        ledger.identity("admin.education"), "InstallPolicy", _install_arg(v2, signers)
    )
    assert installed.ok, installed.message
    assert installed.payload["previous_version"] == 1

    second = await ledger.request(
        officer, subject, tier="T1", purpose="school_enrolment", record_types=["social_insurance"]
    )
    assert second.payload["policy"] == {"version": 2, "bundle_hash": v2.bundle_hash}
    # The first event still names version 1, and version 1 stays retrievable.
    stored = await ledger.evaluate(
        ledger.identity("auditor.audit.sz1"), "GetAccessEvent", {"event_id": first.tx_id}
    )
    assert stored.payload["policy"]["version"] == 1
    old = await ledger.evaluate(ledger.identity("admin.hrss"), "GetPolicy", {"version": 1})
    assert old.payload["policy"]["bundle_hash"] == bundle.bundle_hash


async def test_tampered_bundle_in_state_is_detected(
    ledger: LedgerHarness, consortium: Consortium, bundle: PolicyBundle
) -> None:
    # Rewrite the stored bundle behind the contract's back (as someone with file access could).
    data = bundle.to_dict()
    data["policies"]["owner_access.cedar"] += "\n// edited\n"
    forged = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    key = "\x00" + POLICY_BUNDLE + "\x00" + sequence_key(1) + "\x00"
    block = new_block(ledger.db.height, ledger.db.tip_hash, [b"tamper"])
    ledger.db.commit_block(
        block.SerializeToString(),
        block_header_hash(block.header),
        transactions=[TxIndexEntry(tx_num=0, tx_id="tamper", validation_code=0)],
        writes=[StateWrite(tx_num=0, namespace="accessledger", key=key, value=forged)],
    )
    assert hashlib.sha256(forged).hexdigest() != bundle.bundle_hash
    subject = subject_of(consortium, 2)
    result = await ledger.request(
        ledger.identity("officer.education.sz1"),
        subject,
        tier="T1",
        purpose="school_enrolment",
        record_types=["social_insurance"],
    )
    assert result.status == 409
    assert result.code == "policy_tampered"


async def test_unknown_function_and_bad_arguments(ledger: LedgerHarness) -> None:
    admin = ledger.identity("admin.hrss")
    unknown = await ledger.evaluate(admin, "DropTables")
    assert unknown.code == "unknown_function"
    not_json = await ledger.evaluate(admin, "GetPolicy", "{not json")
    assert not_json.code == "invalid_argument"
    duplicate = await ledger.evaluate(admin, "GetPolicy", '{"version": 1, "version": 1}')
    assert duplicate.code == "invalid_argument"
    unknown_member = await ledger.evaluate(admin, "GetPolicy", {"region": SHENZHEN})
    assert unknown_member.code == "invalid_argument"


async def test_approval_from_an_unknown_ca_refused(
    bare: LedgerHarness, config: LedgerConfig, bundle: PolicyBundle, demo_now: datetime
) -> None:
    admin = bare.identity("admin.publicsecurity")
    await bare.submit(admin, "InitLedger", config.to_json())
    rogue_ca = CertificateAuthority.create(
        org="Tax", msp_id="TaxMSP", domain="tax.rogue.example", now=demo_now
    )
    cert, key = rogue_ca.issue(common_name="admin.tax", node_ou="admin", now=demo_now)
    assert key is not None
    rogue = Identity(
        name="admin.tax",
        kind=IdentityKind.ADMIN,
        org="Tax",
        msp_id="TaxMSP",
        certificate=cert,
        private_key=key,
        attributes={},
    )
    signers = [bare.identity(n) for n in DEPARTMENT_ADMINS[:4]] + [rogue]
    result = await bare.submit(admin, "InstallPolicy", _install_arg(bundle, signers))
    assert result.status == 403
    assert result.code == "approval_invalid"
    # The rogue admin cannot act as a creator either.
    assert (await bare.evaluate(rogue, "GetPolicy")).status == 403
