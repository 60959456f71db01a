"""Audit replay of a real Hyperledger Fabric 2.5.16 ledger (the fixture's 25 blocks)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from audit.findings import FindingKind
from cli.main import app
from network.fabric import blocks
from tests.audit.conftest import FIXTURE_LEDGER, replay
from tests.fabric_fixtures import FABRIC_FIXTURES

MVCC_TX = "522f2fb4e5dfedbb78c9b789f084d4e4c1101cdb04194a9d30073702ab81b770"
POLICY_TX = "1dc54242f0733949bd65c1196cbf124911b2572099ebf8cad16cbeb461cac617"
TIP = "0ea9928f3d168e1e3c6c4dffcc7310b45c632d36556bd7521bb6fe78288e4669"


def test_fixture_ledger_verifies_and_reproduces_fabric_codes() -> None:
    report = replay(FIXTURE_LEDGER).report
    assert report.ok, [str(f) for f in report.findings]
    assert (report.stats.blocks, report.stats.transactions) == (25, 28)
    assert (report.stats.valid, report.stats.invalid, report.stats.config_blocks) == (26, 2, 3)
    assert report.tip_hash == TIP
    assert [(t.block, t.tx_index, t.tx_id, t.code, t.reproduced) for t in report.invalid] == [
        (13, 1, MVCC_TX, "MVCC_READ_CONFLICT", True),
        (14, 0, POLICY_TX, "ENDORSEMENT_POLICY_FAILURE", True),
    ]
    # 22 endorser transactions, creators, endorsements, 24 orderer signatures, config updates.
    assert report.stats.signatures >= 22 * 2 + 24
    # Access-policy checks apply only to AccessLedger's namespace; this ledger has none.
    assert report.access["events"] == 0


def test_cli_replay_of_the_fixture_exits_zero_with_a_report(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["audit", "replay", "--export", str(FIXTURE_LEDGER), "--report", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert "VERIFIED" in result.output
    document = json.loads(target.read_text())
    assert document["ok"] is True
    assert document["tip_hash"] == TIP
    codes = {(t["block"], t["code"]) for t in document["invalid_transactions"]}
    assert codes == {(13, "MVCC_READ_CONFLICT"), (14, "ENDORSEMENT_POLICY_FAILURE")}
    assert document["findings"] == []


def test_orderer_delivered_blocks_lack_validation_codes(tmp_path: Path) -> None:
    """The orderer's copy has no TRANSACTIONS_FILTER: a peer ledger must have one."""
    path = tmp_path / "orderer.bin"
    raw = [p.read_bytes() for p in sorted((FABRIC_FIXTURES / "orderer-blocks").glob("*.block"))]
    blocks.write_block_stream(path, raw)
    report = replay(path).report
    missing = [f for f in report.findings if f.kind is FindingKind.VALIDATION_CODES_MISSING]
    assert [f.block for f in missing] == list(range(1, 25))
    assert not report.ok


def test_expected_tip_from_another_peer_is_checked() -> None:
    assert replay(FIXTURE_LEDGER, expected_tip=TIP).report.ok
    report = replay(FIXTURE_LEDGER, expected_tip="00" * 32).report
    assert [(f.kind, f.block) for f in report.findings] == [(FindingKind.TIP, 24)]


def test_a_truncated_export_is_named(tmp_path: Path) -> None:
    data = FIXTURE_LEDGER.read_bytes()
    path = tmp_path / "cut.bin"
    path.write_bytes(data[: len(data) - 100])
    report = replay(path).report
    assert [(f.kind, f.block) for f in report.findings] == [(FindingKind.MALFORMED, 24)]
    assert "truncated" in report.findings[0].message
