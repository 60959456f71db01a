"""``accessledger demo``: a living ledger of synthetic people, then checked independently."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from crypto.consortium import create_demo_consortium
from gateway.client import Client
from gateway.demo.population import PopulationGenerator, all_people
from tests.gateway.client.live import running_gateway


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"ACCESSLEDGER_HOME": None, "COLUMNS": "200"})


def _home(root: Path) -> Path:
    home = root / "home"
    create_demo_consortium(home, now=datetime.now(UTC))
    return home


def test_demo_leaves_granted_denied_break_glass_and_contested_events(
    runner: CliRunner, tmp_path: Path
) -> None:
    home = _home(tmp_path)
    result = runner.invoke(
        app, ["demo", "--home", str(home), "--people", "5", "--seed", "11", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["people"] == 5
    assert report["records"]["residence_permit"] >= 1
    assert set(report["records"]) >= {"residence_permit", "health_record", "housing_rental"}
    assert report["decisions"]["granted"] >= 1
    assert report["decisions"]["denied"] >= 1
    assert len(report["break_glass_open"]) >= 1
    assert len(report["contested"]) == 1
    assert len(report["consents_granted"]) >= 1
    assert result.stderr == ""  # no progress bar when stderr is not a terminal; stdout is JSON

    # Check the ledger without trusting the report: a fresh gateway, an auditor, a citizen.
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with running_gateway(home) as url:
        with Client.from_home(home, "auditor.audit.sz1", gateway_url=url) as auditor:
            open_reviews = {
                e["event_id"]: e for e in auditor.audit_events(open_review=True)["events"]
            }
            decisions = set()
            for org in ("Education", "Health", "HRSS", "PublicSecurity", "Tax"):
                events = auditor.audit_events(
                    department=org, start=day - timedelta(days=1), end=day + timedelta(days=2)
                )["events"]
                decisions |= {e["decision"] for e in events}
            blocks = b"".join(b.SerializeToString() for b in auditor.blocks())
        contester = next(
            name
            for name in ("citizen.c3", "citizen.c2", "citizen.c1")
            if name in report["citizens"]
        )
        with Client.from_home(home, contester, gateway_url=url) as citizen:
            mine = {a["event_id"]: a for a in citizen.all_my_accesses()}
    assert {"granted", "denied"} <= decisions
    for event_id in report["break_glass_open"]:
        assert open_reviews[event_id]["emergency"] is True
        assert "review_required" in open_reviews[event_id]["obligations"]
    [contested] = report["contested"]
    assert contested in open_reviews
    assert mine[contested]["review"]["contests"] == 1

    # I1: no name and no identity number of the synthetic people is on the ledger.
    people = all_people(PopulationGenerator(11, date.today()).population(5))
    for person in people:
        assert person.name.encode("utf-8") not in blocks
        assert person.identity_number.encode("ascii") not in blocks


def test_demo_refuses_to_seed_twice(runner: CliRunner, tmp_path: Path) -> None:
    home = _home(tmp_path)
    first = runner.invoke(app, ["demo", "--home", str(home), "--people", "2"])
    assert first.exit_code == 0, first.stderr
    assert "Seeded 2 people" in first.stdout
    again = runner.invoke(app, ["demo", "--home", str(home), "--people", "2"])
    assert again.exit_code == 1
    assert again.stderr.strip().splitlines()[-1].startswith("error [demo_already_seeded]: ")


def test_demo_through_a_running_gateway(runner: CliRunner, tmp_path: Path) -> None:
    home = _home(tmp_path)
    with running_gateway(home) as url:
        result = runner.invoke(
            app, ["demo", "--home", str(home), "--people", "3", "--gateway", url, "--json"]
        )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["people"] == 3
    assert sum(report["decisions"].values()) >= 3


def test_demo_needs_a_home(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--home", str(tmp_path / "nowhere"), "--people", "2"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error [home_missing]: ")
