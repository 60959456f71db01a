"""Tampering with a home's engine store: its blocks, its world state, its index of hashes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from audit.findings import FindingKind
from audit.sources import HomeSource
from cli.main import app
from network.engine.network import ledger_path
from tests.audit.conftest import replay
from tests.audit.scenario import Scenario


def _store(scenario: Scenario) -> Path:
    return ledger_path(scenario.home, "accessledger")


def test_altered_world_state_is_named(scenario: Scenario) -> None:
    record_key = b"\x00record\x00rp-1\x00"
    with sqlite3.connect(_store(scenario)) as conn:
        conn.execute(
            "UPDATE state SET value = ? WHERE namespace = 'accessledger' AND key = ?",
            (b'{"record_id":"rp-1","region":"110000"}', record_key),
        )
        conn.execute(
            "INSERT INTO state VALUES ('accessledger', ?, ?, 3, 0)", (b"planted", b"value")
        )
    report = replay(HomeSource(scenario.home)).report
    assert [f.kind for f in report.findings] == [FindingKind.STATE, FindingKind.STATE]
    messages = sorted(f.message for f in report.findings)
    assert messages[0].startswith("accessledger/'\\x00record\\x00rp-1\\x00': replay gives")
    assert "the engine stores 38 bytes" in messages[0]
    assert messages[1].startswith("accessledger/'planted': replay gives absent, the engine stores")


def test_flipped_byte_in_a_stored_block_is_named(scenario: Scenario) -> None:
    number = scenario.blocks["granted"]
    with sqlite3.connect(_store(scenario)) as conn:
        (data,) = conn.execute("SELECT bytes FROM blocks WHERE number = ?", (number,)).fetchone()
        altered = bytearray(data)
        altered[len(altered) // 3] ^= 0x04
        conn.execute("UPDATE blocks SET bytes = ? WHERE number = ?", (bytes(altered), number))
    result = CliRunner().invoke(app, ["audit", "replay", "--home", str(scenario.home)])
    assert result.exit_code == 1
    assert f"block {number}" in result.output.strip().splitlines()[-1]
    report = replay(HomeSource(scenario.home)).report
    assert (report.findings[0].kind, report.findings[0].block) == (FindingKind.DATA_HASH, number)
    assert report.checks["engine state"] == "not compared (replay halted)"


def test_stored_tip_hash_not_matching_the_last_block(scenario: Scenario) -> None:
    with sqlite3.connect(_store(scenario)) as conn:
        (top,) = conn.execute("SELECT MAX(number) FROM blocks").fetchone()
        conn.execute("UPDATE blocks SET header_hash = ? WHERE number = ?", (b"\x00" * 32, top))
    report = replay(HomeSource(scenario.home)).report
    assert [(f.kind, f.block) for f in report.findings] == [(FindingKind.TIP, top)]


def test_missing_home_ledger_is_a_clear_error(tmp_path: Path, demo_home: Path) -> None:
    result = CliRunner().invoke(app, ["audit", "replay", "--home", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "not an AccessLedger home" in result.output
    result = CliRunner().invoke(app, ["audit", "replay", "--home", str(demo_home)])
    assert result.exit_code == 1
    assert "has no ledger yet" in result.output
    assert not ledger_path(demo_home, "accessledger").exists()
