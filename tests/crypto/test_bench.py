"""Tests for crypto.bench and ``accessledger bench crypto``: shape of the figures, never speed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from cli.main import app
from crypto.bench import OPERATIONS, run_crypto_bench
from crypto.errors import AccessLedgerError

FIGURES = {
    "sign_per_s",
    "verify_per_s",
    "encrypt_1k_per_s",
    "decrypt_1k_per_s",
    "seal_per_s",
    "open_per_s",
    "reseal_per_s",
    "pseudonym_per_s",
}


def _assert_positive_figures(payload: dict[str, object]) -> None:
    for name in FIGURES:
        value = payload[name]
        assert isinstance(value, float), name
        assert value > 0, name
        assert math.isfinite(value), name


def test_run_crypto_bench_reports_every_operation() -> None:
    seen: list[str] = []
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    result = run_crypto_bench(seconds=0.005, now=now, on_operation=seen.append)

    assert seen == [label for _, label in OPERATIONS]
    assert {op.name for op in result.operations} == FIGURES
    for op in result.operations:
        assert op.calls > 0
        assert op.elapsed_s >= 0.005
    payload = result.to_json()
    _assert_positive_figures(payload)
    assert payload["payload_bytes"] == 1024
    assert payload["machine"]["measured_at"] == "2026-06-01T12:00:00+00:00"


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan")])
def test_run_crypto_bench_rejects_bad_duration(seconds: float) -> None:
    with pytest.raises(AccessLedgerError, match="must be positive"):
        run_crypto_bench(seconds=seconds)


def test_cli_json_is_one_object_of_named_figures() -> None:
    result = CliRunner().invoke(app, ["bench", "crypto", "--seconds", "0.005", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # exactly one JSON document, nothing else on stdout
    assert isinstance(payload, dict)
    _assert_positive_figures(payload)
    machine = payload["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["cpu_model"]
    assert machine["python"].startswith("3.")


def test_cli_table_lists_every_operation() -> None:
    # Wide terminal so Rich does not wrap the labels.
    result = CliRunner().invoke(
        app, ["bench", "crypto", "--seconds", "0.005"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    for _, label in OPERATIONS:
        assert label in result.stdout


def test_cli_rejects_non_positive_seconds() -> None:
    result = CliRunner().invoke(app, ["bench", "crypto", "--seconds", "0", "--json"])
    assert result.exit_code == 2


def test_bench_app_is_importable_first() -> None:
    # Other command modules do `from cli.bench import bench_app`; importing cli.bench
    # before cli.main must work and register the group on the app exactly once.
    code = (
        "from cli.bench import bench_app\n"
        "from cli.main import app\n"
        "groups = [g.name for g in app.registered_groups]\n"
        "assert groups.count('bench') == 1, groups\n"
        "assert 'crypto' in [c.name for c in bench_app.registered_commands]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
