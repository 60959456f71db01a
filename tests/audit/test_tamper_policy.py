"""An altered policy bundle: governance approvals bind the exact bundle that was installed.

The attacker is one department admin with the orderer and two peers: enough to
put any transaction on the ledger, not enough to forge a majority of admins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

from audit.findings import FindingKind
from policies.bundle import PolicyBundle
from tests.audit.conftest import replay
from tests.audit.forge import (
    edit_writes,
    find_tx,
    load_blocks,
    recompute_commit_hashes,
    reseal,
    rewrite_transaction,
    save_blocks,
)
from tests.audit.scenario import CHAINCODE, Scenario


def _loosened(bundle: dict[str, Any]) -> PolicyBundle:
    """The same bundle with one policy file edited (still valid Cedar)."""
    policies = dict(bundle["policies"])
    name = sorted(policies)[0]
    policies[name] = policies[name] + "\n// quietly edited after approval\n"
    return PolicyBundle.from_dict({**bundle, "policies": policies})


def _install_edit(new: PolicyBundle, *, anchors: bool) -> Callable[[str, bytes], bytes | None]:
    def edit(key: str, value: bytes) -> bytes | None:
        if key.startswith("\x00policy_bundle\x00"):
            return new.canonical_bytes()
        if anchors and (key.startswith("\x00policy_meta\x00") or key == "policy"):
            meta = json.loads(value)
            meta["bundle_hash"] = new.bundle_hash
            return json.dumps(meta).encode()
        return None

    return edit


def _forge_install(scenario: Scenario, *, anchors: bool, argument: bool) -> int:
    consortium = scenario.consortium
    ledger = load_blocks(scenario.export)
    number, index = find_tx(ledger, scenario.tx["policy_v2"])
    new = _loosened(PolicyBundle.load_default(2).to_dict())

    def carried(arg: bytes) -> bytes:
        document = json.loads(arg)
        document["bundle"] = new.to_dict()
        return json.dumps(document).encode()

    rewrite_transaction(
        ledger[number],
        index,
        creator=consortium.identity("admin.health"),
        endorsers=[consortium.identity("peer0.health"), consortium.identity("peer0.tax")],
        results=lambda r: edit_writes(r, CHAINCODE, _install_edit(new, anchors=anchors)),
        argument=carried if argument else None,
    )
    reseal(ledger, number, consortium.identity("orderer0.orderer"))
    recompute_commit_hashes(ledger)
    save_blocks(scenario.export, ledger)
    return number


def test_policy_bundle_altered_after_approval_is_named(scenario: Scenario) -> None:
    """Consistently re-anchored and re-signed; the admins' approvals still name the old hash."""
    number = _forge_install(scenario, anchors=True, argument=True)
    report = replay(scenario.export).report
    first = report.findings[0]
    assert (first.kind, first.block, first.tx_index, first.tx_id) == (
        FindingKind.POLICY_BUNDLE,
        number,
        0,
        scenario.tx["policy_v2"],
    )
    assert first.message.startswith("policy version 2: approvals do not verify")
    # Decisions taken under the approved v2 now name a bundle that was not anchored.
    later = [f for f in report.findings if f.kind is FindingKind.DECISION]
    assert {f.tx_id for f in later} == {scenario.tx["under_v2"], scenario.tx["other_subject"]}


def test_stored_bundle_not_matching_its_anchor_is_named(scenario: Scenario) -> None:
    number = _forge_install(scenario, anchors=False, argument=False)
    report = replay(scenario.export).report
    messages = [
        f.message
        for f in report.findings
        if (f.kind, f.block) == (FindingKind.POLICY_BUNDLE, number)
    ]
    assert "policy version 2: policy_meta anchors a bundle hash other than the stored bundle's" in (
        messages
    )
    assert any("not the bundle the admins' transaction carried" in m for m in messages)


def _registration_also_writes(scenario: Scenario, key: str, value: bytes) -> tuple[int, Any]:
    """Forge record rp-2's RegisterRecord to write ``key`` too (re-signed, re-sealed, chained);
    replay the export and return the transaction's block and the report's first finding."""
    consortium = scenario.consortium
    ledger = load_blocks(scenario.export)
    number, index = find_tx(ledger, scenario.tx["record_rp-2"])

    def add_write(results: bytes) -> bytes:
        txrw = rwset_pb2.TxReadWriteSet.FromString(results)
        for ns in txrw.ns_rwset:
            if ns.namespace == CHAINCODE:
                kv = kv_rwset_pb2.KVRWSet.FromString(ns.rwset)
                kv.writes.add(key=key, value=value)
                ns.rwset = kv.SerializeToString()
        return txrw.SerializeToString()

    rewrite_transaction(
        ledger[number],
        index,
        creator=consortium.identity("registrar.publicsecurity.sz1"),
        endorsers=[consortium.identity("peer0.publicsecurity"), consortium.identity("peer0.tax")],
        results=add_write,
    )
    reseal(ledger, number, consortium.identity("orderer0.orderer"))
    recompute_commit_hashes(ledger)
    save_blocks(scenario.export, ledger)
    return number, replay(scenario.export).report.findings[0]


def test_policy_written_outside_governance_is_named(scenario: Scenario) -> None:
    """A record registration that also rewrites the anchored policy pointer."""
    digest = hashlib.sha256(b"forged").hexdigest()
    pointer = json.dumps({"bundle_hash": digest}).encode()
    number, first = _registration_also_writes(scenario, "policy", pointer)
    assert (first.kind, first.block, first.tx_id) == (
        FindingKind.POLICY_BUNDLE,
        number,
        scenario.tx["record_rp-2"],
    )
    assert first.message == "RegisterRecord wrote 'policy' state"


_FP = "ab" * 32


@pytest.mark.parametrize(
    ("key", "object_type"),
    [
        (f"\x00subject_citizen\x00ps1:forged\x00CivilAffairsMSP\x00{_FP}\x00", "subject_citizen"),
        (f"\x00citizen\x00CivilAffairsMSP\x00{_FP}\x00", "citizen"),
        ("citizen_index", "citizen_index"),
    ],
)
def test_citizen_bindings_written_outside_register_citizen_are_named(
    scenario: Scenario, key: str, object_type: str
) -> None:
    """A record registration that also binds a credential to a subject (or marks the index)."""
    number, first = _registration_also_writes(scenario, key, b"1")
    assert (first.kind, first.block, first.tx_id) == (
        FindingKind.ACCESS_EVENT,
        number,
        scenario.tx["record_rp-2"],
    )
    assert first.message == f"RegisterRecord wrote {object_type!r} state"
