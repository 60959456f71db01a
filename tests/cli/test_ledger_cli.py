"""``accessledger ledger info|export`` and ``accessledger bench ledger``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from crypto.consortium import Consortium
from network.engine.network import ledger_path
from network.fabric.blocks import read_block_stream, verify_chain
from tests.network.engine.test_pipeline import CC, create_args, make_home, open_network


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"ACCESSLEDGER_HOME": None, "COLUMNS": "200"})


def _home_with_ledger(root: Path) -> tuple[Path, str, int]:
    home = make_home(root)
    officer = Consortium.load(home).identity("officer.education.sz1")

    async def run() -> tuple[str, int]:
        async with open_network(home) as network:
            await network.submit(officer, CC, "CreateAsset", create_args("c1"))
            await network.submit(officer, CC, "CreateAsset", create_args("c2"))
            return network.tip_hash.hex(), network.height

    tip, height = asyncio.run(run())
    return home, tip, height


def test_info_shows_height_and_tip(runner: CliRunner, tmp_path: Path) -> None:
    home, tip, height = _home_with_ledger(tmp_path)
    result = runner.invoke(app, ["ledger", "info", "--home", str(home), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["height"] == height == 3
    assert info["tip_hash"] == tip
    assert info["tip_block"] == 2
    assert info["channel"] == "accessledger"
    assert info["tip_validation_codes"] == {"VALID": 1}
    assert info["last_config_block"] == 0

    table = runner.invoke(app, ["ledger", "info", "--home", str(home)])
    assert table.exit_code == 0, table.output
    assert tip in table.stdout
    assert any(line.split() == ["height", "3"] for line in table.stdout.splitlines())


def test_export_writes_a_verifiable_block_stream(runner: CliRunner, tmp_path: Path) -> None:
    home, tip, height = _home_with_ledger(tmp_path)
    out = tmp_path / "export" / "ledger.bin"
    result = runner.invoke(app, ["ledger", "export", "--home", str(home), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"exported {height} blocks" in result.stdout
    assert tip in result.stdout
    blocks = list(read_block_stream(out))
    assert verify_chain(blocks) == height

    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    result = runner.invoke(
        app, ["ledger", "export", "--home", str(home), "--out", str(blocked / "ledger.bin")]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error [export_failed]: cannot write the export to")
    assert "Traceback" not in result.output


def test_missing_and_corrupt_ledgers_are_one_line_errors(runner: CliRunner, tmp_path: Path) -> None:
    fresh = make_home(tmp_path / "fresh")
    result = runner.invoke(app, ["ledger", "info", "--home", str(fresh)])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error [ledger_missing]:")
    assert len(result.stderr.strip().splitlines()) == 1

    home, _, _ = _home_with_ledger(tmp_path / "used")
    with sqlite3.connect(ledger_path(home, "accessledger")) as conn:
        (data,) = conn.execute("SELECT bytes FROM blocks WHERE number = 1").fetchone()
        tampered = bytes(data).replace(b'"Owner":"tom"', b'"Owner":"eve"')
        assert tampered != bytes(data)
        conn.execute("UPDATE blocks SET bytes = ? WHERE number = 1", (tampered,))
    for args in (["info"], ["export", "--out", str(tmp_path / "x.bin")]):
        result = runner.invoke(app, ["ledger", *args, "--home", str(home)])
        assert result.exit_code == 1
        assert result.stderr.strip().startswith("error [ledger_corrupt]:")
        assert "block 1" in result.stderr
        assert "Traceback" not in result.output
    assert not (tmp_path / "x.bin").exists()


def test_bench_ledger_json(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["bench", "ledger", "--txs", "120", "--batch", "20", "--profile-txs", "60", "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["txs"] == 120
    assert figures["tx_per_s"] > 0
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert figures["endorsements"] == 2
    assert figures["blocks"] >= 120 // 20
    assert figures["profile_top"]
    assert all(item["function"] for item in figures["profile_top"])
    assert set(figures["phases"]) >= {"commit thread: validate block"}
