"""An access decision that contradicts the policy anchored when it was made.

The attacker controls the requesting officer's key, two peers (enough for the
OutOf(2) endorsement policy) and the orderer: every signature on the ledger is
valid. Only re-deciding the request under the anchored policy shows the lie.
"""

from __future__ import annotations

import json
from typing import Any

from audit.findings import FindingKind
from tests.audit.conftest import replay
from tests.audit.forge import (
    edit_writes,
    find_tx,
    json_edit,
    load_blocks,
    recompute_commit_hashes,
    reseal,
    rewrite_transaction,
    save_blocks,
)
from tests.audit.scenario import CHAINCODE, Scenario

ACCESS_PREFIX = "\x00access\x00"


def _grant_everything(event: dict[str, Any]) -> None:
    """Turn a denial into a grant of every tier up to the requested one."""
    for entry in event["denied"]:
        entry.pop("reason", None)
        entry.pop("errors", None)
        entry["tiers"] = ["T0", "T1", "T2"]
        entry["obligations"] = []
    event["granted"], event["denied"] = event["denied"], []
    event["decision"] = "granted"


def _forge_denial(scenario: Scenario, *, also_event: bool) -> int:
    consortium = scenario.consortium
    ledger = load_blocks(scenario.export)
    number, index = find_tx(ledger, scenario.tx["denied"])

    def payload(data: bytes) -> bytes:
        event = json.loads(data)
        _grant_everything(event)
        return json.dumps(event).encode()

    rewrite_transaction(
        ledger[number],
        index,
        creator=consortium.identity("officer.education.sz1"),
        endorsers=[consortium.identity("peer0.education"), consortium.identity("peer0.audit")],
        results=lambda r: edit_writes(r, CHAINCODE, json_edit(ACCESS_PREFIX, _grant_everything)),
        event_payload=payload if also_event else None,
    )
    reseal(ledger, number, consortium.identity("orderer0.orderer"))
    recompute_commit_hashes(ledger)
    save_blocks(scenario.export, ledger)
    return number


def test_decision_contradicting_the_anchored_policy_is_named(scenario: Scenario) -> None:
    number = _forge_denial(scenario, also_event=True)
    report = replay(scenario.export).report
    assert not report.ok
    first = report.findings[0]
    assert (first.kind, first.block, first.tx_index, first.tx_id) == (
        FindingKind.DECISION,
        number,
        0,
        scenario.tx["denied"],
    )
    assert "record rp-1: recorded granted, policy v1 gives deny" in first.message
    # Nothing else on the ledger is wrong: every signature and code verifies.
    assert {f.kind for f in report.findings} == {FindingKind.DECISION}


def test_stored_event_differing_from_the_emitted_event_is_named(scenario: Scenario) -> None:
    number = _forge_denial(scenario, also_event=False)
    report = replay(scenario.export).report
    kinds = {(f.kind, f.block) for f in report.findings}
    assert (FindingKind.ACCESS_EVENT, number) in kinds
    assert (FindingKind.DECISION, number) in kinds
    emitted = [f for f in report.findings if f.kind is FindingKind.ACCESS_EVENT]
    assert "AccessDecided chaincode event differs" in emitted[0].message


def test_event_claiming_an_older_policy_version_is_named(scenario: Scenario) -> None:
    """A decision taken under v2 but recorded as v1 misstates the anchored policy."""
    consortium = scenario.consortium
    ledger = load_blocks(scenario.export)
    number, index = find_tx(ledger, scenario.tx["under_v2"])

    def older(event: dict[str, Any]) -> None:
        event["policy"]["version"] = 1

    def payload(data: bytes) -> bytes:
        event = json.loads(data)
        older(event)
        return json.dumps(event).encode()

    rewrite_transaction(
        ledger[number],
        index,
        creator=consortium.identity("officer.education.sz1"),
        endorsers=[consortium.identity("peer0.education"), consortium.identity("peer0.tax")],
        results=lambda r: edit_writes(r, CHAINCODE, json_edit(ACCESS_PREFIX, older)),
        event_payload=payload,
    )
    reseal(ledger, number, consortium.identity("orderer0.orderer"))
    recompute_commit_hashes(ledger)
    save_blocks(scenario.export, ledger)
    report = replay(scenario.export).report
    first = report.findings[0]
    assert (first.kind, first.block) == (FindingKind.DECISION, number)
    assert "decided under policy v1" in first.message
    assert "but v2" in first.message
    assert "anchored at this height" in first.message


def test_malformed_access_event_is_named_not_a_crash(scenario: Scenario) -> None:
    consortium = scenario.consortium
    ledger = load_blocks(scenario.export)
    number, index = find_tx(ledger, scenario.tx["granted"])

    def mangle(key: str, value: bytes) -> bytes | None:
        return (
            b'{"format": "accessledger-access-event/1", "decision": 7}'
            if key.startswith(ACCESS_PREFIX)
            else None
        )

    rewrite_transaction(
        ledger[number],
        index,
        creator=consortium.identity("officer.education.sz1"),
        endorsers=[consortium.identity("peer0.education"), consortium.identity("peer0.audit")],
        results=lambda r: edit_writes(r, CHAINCODE, mangle),
    )
    reseal(ledger, number, consortium.identity("orderer0.orderer"))
    recompute_commit_hashes(ledger)
    save_blocks(scenario.export, ledger)
    report = replay(scenario.export).report
    first = report.findings[0]
    assert (first.kind, first.block, first.tx_id) == (
        FindingKind.ACCESS_EVENT,
        number,
        scenario.tx["granted"],
    )
    assert first.message.startswith("malformed access event: event.decision")
