"""Replay of an untouched AccessLedger ledger, from the home and from an export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.findings import FindingKind
from audit.sources import HomeSource
from cli.main import app
from tests.audit.conftest import replay
from tests.audit.scenario import Scenario


def test_replay_from_the_home_verifies_everything(built_scenario: Scenario) -> None:
    # The custodians' release logs under the home are found without being named.
    outcome = replay(HomeSource(built_scenario.home), stores=built_scenario.stores)
    report = outcome.report
    assert report.ok, [str(f) for f in report.findings]
    assert report.checks["engine state"] == "identical to the replayed state"
    assert report.access == {
        "events": 5,
        "decisions_rechecked": 8,
        "policy_versions": 2,
        "records": 5,
        "reviews": 1,
    }
    assert report.checks["key releases"] == "9 traced from 4 log(s)"
    assert [e.event_id for e in outcome.events] == [
        built_scenario.tx[name]
        for name in ("denied", "granted", "break_glass", "under_v2", "other_subject")
    ]
    glass = outcome.events[2]
    assert glass.review.status == "closed"
    assert outcome.events[1].review.contested
    kinds = {flag.kind for flag in report.flags}
    assert {"denied_then_granted", "contested"} <= kinds


def test_replay_from_an_export_verifies_and_matches_the_home(built_scenario: Scenario) -> None:
    from_export = replay(built_scenario.export).report
    from_home = replay(HomeSource(built_scenario.home)).report
    assert from_export.ok
    assert from_export.tip_hash == from_home.tip_hash
    assert from_export.stats == from_home.stats
    assert from_export.checks["engine state"] == "not compared (needs --home)"


def test_cli_replay_of_the_home_with_stores_and_report(
    built_scenario: Scenario, tmp_path: Path
) -> None:
    target = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        [
            "audit", "replay", "--home", str(built_scenario.home),
            "--stores", str(built_scenario.stores),
            "--report", str(target), "--workers", "0",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(target.read_text())
    assert document["ok"] is True
    assert document["access"]["events"] == 5
    assert {a["kind"] for a in document["anomalies"]} >= {"denied_then_granted", "contested"}
    assert document["offchain"]["referenced"] == 15


def test_default_home_comes_from_the_environment(
    built_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCESSLEDGER_HOME", str(built_scenario.home))
    result = CliRunner().invoke(app, ["audit", "replay", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert f"home {built_scenario.home}" in result.output


def test_untraced_key_releases_are_named(scenario: Scenario) -> None:
    lines = scenario.key_releases.read_text().splitlines()
    release = json.loads(lines[0])
    bad = [
        ({"tier": "T3"}, "tier T3 released, the event granted ['T0', 'T1']"),
        ({"tx_id": "f" * 64}, "names no committed, valid access event"),
        ({"released_at": "2000-01-01T00:00:00.000000Z"}, "released before the access was decided"),
        ({"recipient_key_sha256": "0" * 64}, "sealed to a key the officer had not registered"),
        ({"content_address": "1" * 64}, "opens a ciphertext other than the one the ledger names"),
        ({"org": "Housing"}, "the Housing custodian does not own record rp-1"),
        ({"officer_fingerprint": "2" * 64}, "released to another officer than the one who asked"),
        ({"block_number": 1}, "names block 1, the event is in block"),
    ]
    with scenario.key_releases.open("a") as log:
        for change, _ in bad:
            log.write(json.dumps({**release, **change}) + "\n")
        log.write("not json\n")
    logs = tuple(scenario.release_logs)
    report = replay(scenario.export, key_releases=logs).report
    assert all(f.kind is FindingKind.KEY_RELEASE for f in report.findings)
    assert len(report.findings) == len(bad) + 1
    for finding, (_, expected) in zip(report.findings, bad, strict=False):
        assert expected in finding.message
    first = report.findings[0]
    assert f"releases.jsonl line {len(lines) + 1}: release of rp-1 T3" in first.message
    assert (first.tx_id, first.block) == (release["tx_id"], release["block_number"])
    assert f"line {len(lines) + len(bad) + 1}:" in report.findings[-1].message


def test_ledger_export_command_output_replays(built_scenario: Scenario, tmp_path: Path) -> None:
    """`ledger export` (the engine's exporter) and `audit replay --export` agree end to end."""
    exported = tmp_path / "exported.bin"
    result = CliRunner().invoke(
        app, ["ledger", "export", "--home", str(built_scenario.home), "--out", str(exported)]
    )
    assert result.exit_code == 0, result.output
    assert exported.read_bytes() == built_scenario.export.read_bytes()
    replayed = CliRunner().invoke(
        app, ["audit", "replay", "--export", str(exported), "--workers", "0"]
    )
    assert replayed.exit_code == 0, replayed.output
