"""The benchmark ledger generator and ``accessledger bench replay`` (speed is never asserted)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.errors import AuditInputError
from audit.generate import LedgerSpec, generate_ledger
from cli.main import app
from network.fabric import blocks
from tests.audit.conftest import replay


def test_generated_ledger_is_genuinely_signed_and_verifies(
    demo_home: Path, demo_now: datetime, tmp_path: Path
) -> None:
    spec = LedgerSpec(demo_home, transactions=250, per_block=100, keys=100,
                      start=demo_now + timedelta(minutes=1))  # fmt: skip
    path = tmp_path / "ledger.bin"
    seen: list[int] = []
    result = generate_ledger(path, spec, on_block=lambda n, txs: seen.append(txs))
    assert (result.blocks, result.transactions) == (4, 250)
    assert seen == [100, 200, 250]
    ledger = list(blocks.read_block_stream(path))
    assert [len(b.data.data) for b in ledger] == [1, 100, 100, 50]
    report = replay(path).report
    assert report.ok, [str(f) for f in report.findings[:3]]
    # keys wrap around after 100 transactions, so later reads carry real versions
    assert report.stats.valid == 251
    assert report.stats.signatures == 250 * 3 + 3


def test_keys_must_cover_a_block(demo_home: Path, demo_now: datetime) -> None:
    with pytest.raises(AuditInputError, match="keys must be at least per_block"):
        LedgerSpec(demo_home, transactions=10, per_block=10, keys=5, start=demo_now)


def test_bench_replay_command_reports_rate_and_memory(tmp_path: Path) -> None:
    out = tmp_path / "bench.bin"
    result = CliRunner().invoke(
        app,
        ["bench", "replay", "--transactions", "300", "--per-block", "100", "--workers", "0",
         "--out", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    (run,) = figures["runs"]
    assert run["workers"] == 0
    assert run["transactions"] == 301
    assert run["findings"] == 0
    assert run["peak_rss_mb"] > 0
    assert run["transactions_per_second"] > 0
    assert figures["generated"]["transactions"] == 300
    assert out.exists()
    assert figures["machine"]["cpu_count"]
