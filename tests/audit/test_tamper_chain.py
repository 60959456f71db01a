"""Tampering with blocks themselves: bytes, order, removal and insertion.

The Fabric fixture ledger is the victim where no key is needed; the engine
scenario (whose orderer key the attacker holds) shows what even a
compromised orderer cannot hide.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from audit.findings import FindingKind
from cli.main import app
from tests.audit.conftest import replay
from tests.audit.forge import find_tx, load_blocks, reseal, save_blocks
from tests.audit.scenario import Scenario


def _first(path: Path) -> tuple[FindingKind, int | None, str]:
    report = replay(path).report
    assert not report.ok
    finding = report.findings[0]
    return finding.kind, finding.block, finding.message


def test_flipped_byte_in_an_envelope_names_block_and_transaction(fixture_copy: Path) -> None:
    ledger = load_blocks(fixture_copy)
    envelope = bytearray(ledger[7].data.data[0])
    envelope[len(envelope) // 2] ^= 0x01
    ledger[7].data.data[0] = bytes(envelope)
    save_blocks(fixture_copy, ledger)

    finding = replay(fixture_copy).report.findings[0]
    assert (finding.kind, finding.block, finding.tx_index) == (FindingKind.DATA_HASH, 7, 0)
    assert "recorded VALID now fails" in finding.message

    result = CliRunner().invoke(app, ["audit", "replay", "--export", str(fixture_copy)])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error [audit_failed]")
    assert "block 7" in last


def test_reordered_transactions_are_detected(fixture_copy: Path) -> None:
    ledger = load_blocks(fixture_copy)
    first, second = bytes(ledger[12].data.data[0]), bytes(ledger[12].data.data[1])
    ledger[12].data.data[0], ledger[12].data.data[1] = second, first
    save_blocks(fixture_copy, ledger)
    kind, block, message = _first(fixture_copy)
    assert (kind, block) == (FindingKind.DATA_HASH, 12)
    assert "reordered" in message

    # Recomputing the data hash and the chain does not help without the orderer's key.
    reseal(ledger, 12)
    save_blocks(fixture_copy, ledger)
    kind, block, message = _first(fixture_copy)
    assert (kind, block) == (FindingKind.BLOCK_SIGNATURE, 12)
    assert "BlockValidation" in message


def test_removed_block_is_named(fixture_copy: Path) -> None:
    ledger = load_blocks(fixture_copy)
    del ledger[10]
    save_blocks(fixture_copy, ledger)
    kind, block, message = _first(fixture_copy)
    assert (kind, block) == (FindingKind.CHAIN, 10)
    assert message == "block 10 missing: block 11 follows block 9"


def test_inserted_block_with_recomputed_chain_is_named(fixture_copy: Path) -> None:
    ledger = load_blocks(fixture_copy)
    inserted = type(ledger[7])()
    inserted.CopyFrom(ledger[7])
    ledger.insert(8, inserted)
    for number, block in enumerate(ledger):
        block.header.number = number
    reseal(ledger, 8)
    save_blocks(fixture_copy, ledger)
    kind, block, _ = _first(fixture_copy)
    assert (kind, block) == (FindingKind.BLOCK_SIGNATURE, 8)


def test_inserted_block_signed_by_a_compromised_orderer(scenario: Scenario) -> None:
    """Re-inserting a committed access request, even properly signed, is a duplicate."""
    ledger = load_blocks(scenario.export)
    number, _ = find_tx(ledger, scenario.tx["granted"])
    copy = type(ledger[number])()
    copy.CopyFrom(ledger[number])
    ledger.insert(number + 1, copy)
    for position, block in enumerate(ledger):
        block.header.number = position
    reseal(ledger, number + 1, scenario.consortium.identity("orderer0.orderer"))
    save_blocks(scenario.export, ledger)
    report = replay(scenario.export).report
    first = report.findings[0]
    assert (first.kind, first.block, first.tx_index) == (
        FindingKind.VALIDATION_CODE,
        number + 1,
        0,
    )
    assert "recorded VALID, replay gives DUPLICATE_TXID" in first.message
