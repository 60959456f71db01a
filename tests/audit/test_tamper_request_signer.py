"""An access request whose signed document the transaction's creator did not sign (I3).

The chaincode refuses such a request at endorsement, so it can only reach a
ledger forged after the fact: the attacker holds the transaction creator's
key, two peers (enough for the OutOf(2) endorsement policy) and the orderer,
and rewrites a committed ``RequestAccess`` so that its argument, its stored
access event and its emitted ``AccessDecided`` event all agree -- every
envelope, endorsement and block signature verifies. What the keys cannot
hide is that the embedded request document was not signed by the creator:
the auditor must verify that signature itself and name the transaction.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from audit.findings import Finding, FindingKind
from crypto.signing import Signer
from policies.canonical import canonical_json
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
NOT_SIGNED = "the request is not signed by the transaction's creator"
CREATOR = "officer.education.sz1"
#: Same department, role and region as the creator: only the key differs.
OTHER_OFFICER = "officer.education.cd1"

#: Rewrites the signed request ``{"document", "signature"}`` in place.
RequestForgery = Callable[[Scenario, dict[str, Any]], None]


def _resign_by_another_officer(scenario: Scenario, signed: dict[str, Any]) -> None:
    """Keep the document, replace the creator's signature by another officer's."""
    signer: Signer = scenario.consortium.identity(OTHER_OFFICER).signer
    signature = signer(canonical_json(signed["document"]))
    signed["signature"] = base64.b64encode(signature).decode("ascii")


def _alter_the_document(scenario: Scenario, signed: dict[str, Any]) -> None:
    """Keep the creator's signature, change a field the decision does not depend on."""
    assert signed["document"]["case_ref"] is None
    signed["document"]["case_ref"] = "CASE-2024-0042"


def _forge_request(scenario: Scenario, label: str, forgery: RequestForgery) -> tuple[int, int]:
    """Rewrite transaction ``label`` consistently everywhere; return (block, index)."""
    consortium = scenario.consortium
    ledger = load_blocks(scenario.export)
    number, index = find_tx(ledger, scenario.tx[label])
    forged: dict[str, Any] = {}

    def argument(data: bytes) -> bytes:
        signed = json.loads(data)
        original = json.loads(data)
        forgery(scenario, signed)
        assert signed != original
        forged.update(signed)
        return json.dumps(signed).encode()

    def follow(event: dict[str, Any]) -> None:
        """Make the event carry exactly the forged request, and hash it correctly."""
        event["request"] = forged["document"]
        event["request_signature"] = forged["signature"]
        event["request_hash"] = hashlib.sha256(canonical_json(forged["document"])).hexdigest()

    def payload(data: bytes) -> bytes:
        event = json.loads(data)
        follow(event)
        return json.dumps(event).encode()

    # ``argument`` runs first (rewrite_transaction edits the results, then the event,
    # then the argument), so the edits that depend on it are applied in a second pass.
    block = ledger[number]
    creator = consortium.identity(CREATOR)
    endorsers = [consortium.identity("peer0.education"), consortium.identity("peer0.tax")]
    rewrite_transaction(block, index, creator=creator, endorsers=endorsers, argument=argument)
    rewrite_transaction(
        block,
        index,
        creator=creator,
        endorsers=endorsers,
        results=lambda r: edit_writes(r, CHAINCODE, json_edit(ACCESS_PREFIX, follow)),
        event_payload=payload,
    )
    reseal(ledger, number, consortium.identity("orderer0.orderer"))
    recompute_commit_hashes(ledger)
    save_blocks(scenario.export, ledger)
    return number, index


@pytest.mark.parametrize(
    "forgery",
    [_resign_by_another_officer, _alter_the_document],
    ids=["signed-by-another-officer", "document-altered-after-signing"],
)
def test_request_not_signed_by_the_creator_is_named(
    scenario: Scenario, forgery: RequestForgery
) -> None:
    # The request decided under policy v2: granted, and neither reviewed nor contested
    # later (a later rewrite of the event would carry the original request along).
    tx_id = scenario.tx["under_v2"]
    number, index = _forge_request(scenario, "under_v2", forgery)
    report = replay(scenario.export).report
    assert not report.ok
    expected = Finding(
        FindingKind.ACCESS_EVENT, f"event {tx_id}: {NOT_SIGNED}", number, index, tx_id
    )
    # The forgery is consistent: every signature, hash, code and decision checks out,
    # so the missing signature by the creator is the one and only finding.
    assert report.findings == [expected], [str(f) for f in report.findings]


def test_the_unforged_scenario_has_no_signer_finding(scenario: Scenario) -> None:
    """Control: the genuine requests (all signed by their creators) replay clean."""
    report = replay(scenario.export).report
    assert report.ok, [str(f) for f in report.findings]
