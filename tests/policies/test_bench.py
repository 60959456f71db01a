"""``bench policy`` reports both rates; speed itself is never asserted."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from crypto.errors import AccessLedgerError
from policies.bench import run_policy_bench


def test_bench_reports_positive_rates_and_a_mix_of_decisions() -> None:
    result = run_policy_bench(decisions=60, batch=25)
    assert result.single_per_s > 0
    assert result.batched_per_s > 0
    # The workload mixes permits and denials (3 of the 6 record kinds are permitted).
    assert result.allowed_share == pytest.approx(0.5)


def test_bench_policy_json_is_one_object_of_named_figures() -> None:
    out = CliRunner().invoke(app, ["bench", "policy", "--decisions", "30", "--json"])
    assert out.exit_code == 0, out.output
    figures = json.loads(out.stdout)
    assert figures["single_decisions_per_s"] > 0
    assert figures["batched_decisions_per_s"] > 0
    assert figures["decisions"] == 30


def test_bench_refuses_nonsense_sizes() -> None:
    with pytest.raises(AccessLedgerError):
        run_policy_bench(decisions=0)
