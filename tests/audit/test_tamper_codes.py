"""Altered validation codes: TRANSACTIONS_FILTER is not signed, so replay recomputes it."""

from __future__ import annotations

from pathlib import Path

from audit.findings import FindingKind
from network.fabric import blocks
from tests.audit.conftest import replay
from tests.audit.forge import find_tx, load_blocks, save_blocks
from tests.audit.scenario import Scenario


def test_mvcc_conflict_relabelled_valid_is_named(fixture_copy: Path) -> None:
    ledger = load_blocks(fixture_copy)
    assert blocks.transactions_filter(ledger[13]) == [0, 11]
    blocks.set_transactions_filter(ledger[13], [0, 0])
    save_blocks(fixture_copy, ledger)
    report = replay(fixture_copy).report
    assert [(f.kind, f.block, f.tx_index) for f in report.findings] == [
        (FindingKind.VALIDATION_CODE, 13, 1)
    ]
    assert report.findings[0].tx_id.startswith("522f2fb4")
    assert report.findings[0].message.startswith("recorded VALID, replay gives MVCC_READ_CONFLICT")
    reproduced = {(t.block, t.reproduced) for t in report.invalid}
    assert (13, False) in reproduced


def test_valid_access_request_relabelled_invalid_is_named(scenario: Scenario) -> None:
    """Hiding an access by marking it invalid does not work either."""
    ledger = load_blocks(scenario.export)
    number, index = find_tx(ledger, scenario.tx["granted"])
    blocks.set_transactions_filter(ledger[number], [9])  # DUPLICATE_TXID
    save_blocks(scenario.export, ledger)
    report = replay(scenario.export).report
    first = report.findings[0]
    assert (first.kind, first.block, first.tx_index, first.tx_id) == (
        FindingKind.VALIDATION_CODE,
        number,
        index,
        scenario.tx["granted"],
    )
    assert first.message == "recorded DUPLICATE_TXID, replay gives VALID"
