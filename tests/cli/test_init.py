"""Tests for ``accessledger init`` and ``accessledger identities``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from crypto.consortium import Consortium
from crypto.identity import IdentityKind

REPO = Path(__file__).resolve().parents[2]
ACCESSLEDGER = REPO / ".venv" / "bin" / "accessledger"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"ACCESSLEDGER_HOME": None, "COLUMNS": "200"})


def tree_digest(root: Path) -> str:
    """SHA-256 over every path, file mode and file content under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(oct(path.stat().st_mode).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_init_creates_a_home_and_summarises_it(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = runner.invoke(app, ["init", "--home", str(home)])
    assert result.exit_code == 0, result.output
    consortium = Consortium.load(home)
    assert len(consortium.identities()) == 50
    out = result.stdout
    assert f"Created the demo consortium in {home}" in out
    for org in ("PublicSecurity", "HRSS", "Housing", "Education", "Health", "Tax"):
        assert f"{org}MSP" in out
    assert "CivilAffairsMSP" in out
    assert "AuditMSP" in out
    assert "OrdererMSP" in out
    for kind, count in [("peer", 8), ("orderer", 1), ("admin", 9), ("officer", 27)]:
        assert any(line.split() == [kind, str(count)] for line in out.splitlines())
    assert any(line.split() == ["total", "50"] for line in out.splitlines())
    assert str(home / "network.yaml") in out
    assert str(home / "consortium.secret") in out


def test_init_twice_refuses_and_leaves_the_first_home_intact(
    runner: CliRunner, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", "--home", str(home)]).exit_code == 0
    before = tree_digest(home)
    second = runner.invoke(app, ["init", "--home", str(home)])
    assert second.exit_code == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == f"error [home_exists]: {home} already exists; pass --force to replace it"
    assert "Traceback" not in second.output
    assert tree_digest(home) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_init_force_recreates(runner: CliRunner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", "--home", str(home)]).exit_code == 0
    before = tree_digest(home)
    old_ca = (home / "orgs/Education/ca/ca-cert.pem").read_bytes()
    result = runner.invoke(app, ["init", "--home", str(home), "--force"])
    assert result.exit_code == 0, result.output
    assert tree_digest(home) != before
    assert (home / "orgs/Education/ca/ca-cert.pem").read_bytes() != old_ca
    assert len(Consortium.load(home).identities()) == 50


def test_home_defaults_to_the_environment_variable(tmp_path: Path) -> None:
    home = tmp_path / "from-env"
    runner = CliRunner(env={"ACCESSLEDGER_HOME": str(home)})
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert (home / "network.yaml").is_file()
    listed = runner.invoke(app, ["identities", "--json"])
    assert listed.exit_code == 0
    assert len(json.loads(listed.stdout)) == 50


def test_home_defaults_to_dot_accessledger(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert (tmp_path / ".accessledger" / "network.yaml").is_file()


def test_identities_json_covers_every_kind(
    runner: CliRunner, demo_home: Path, consortium: Consortium
) -> None:
    result = runner.invoke(app, ["identities", "--home", str(demo_home), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [entry["name"] for entry in listed] == [i.name for i in consortium.identities()]
    assert {entry["kind"] for entry in listed} == {kind.value for kind in IdentityKind}
    by_name = {entry["name"]: entry for entry in listed}
    officer = by_name["officer.hrss.sz2"]
    assert officer["kind"] == "officer"
    assert officer["org"] == "HRSS"
    assert officer["msp_id"] == "HRSSMSP"
    assert officer["attributes"]["role"] == "labour_inspector"
    assert officer["attributes"]["region"] == "440300"
    assert officer["attributes"]["clearance"] == "2"
    assert Path(officer["msp_dir"], "signcerts", "cert.pem").is_file()
    assert by_name["peer0.education"]["attributes"] == {}
    assert by_name["citizen.c1"]["org"] == "CivilAffairs"
    assert by_name["auditor.audit.sz1"]["kind"] == "auditor"
    for entry in listed:
        assert set(entry) == {"name", "kind", "org", "msp_id", "attributes", "msp_dir"}


def test_identities_table(runner: CliRunner, demo_home: Path) -> None:
    result = runner.invoke(app, ["identities", "--home", str(demo_home)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert rows["officer.publicsecurity.sz2"][:4] == [
        "officer.publicsecurity.sz2",
        "officer",
        "PublicSecurity",
        "PublicSecurityMSP",
    ]
    assert "role=investigator" in rows["officer.publicsecurity.sz2"]
    assert "region=440300" in rows["officer.publicsecurity.sz2"]
    assert "clearance=3" in rows["officer.publicsecurity.sz2"]
    assert rows["orderer0.orderer"][:4] == ["orderer0.orderer", "orderer", "Orderer", "OrdererMSP"]


def test_identities_on_a_missing_home_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["identities", "--home", str(tmp_path / "nope")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error [home_missing]: ")
    assert "accessledger init --home" in lines[0]


def test_real_console_script(tmp_path: Path) -> None:
    """The installed ``accessledger`` entry point, in a child process with a real clock."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "ACCESSLEDGER_HOME"}
    command = [str(ACCESSLEDGER)]
    first = subprocess.run(
        [*command, "init", "--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert "Created the demo consortium" in first.stdout
    before = tree_digest(home)

    again = subprocess.run(
        [*command, "init", "--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr.count("\n") == 1
    assert again.stderr.startswith("error [home_exists]: ")
    assert tree_digest(home) == before

    listed = subprocess.run(
        [*command, "identities", "--home", str(home), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    kinds = {entry["kind"] for entry in json.loads(listed.stdout)}
    assert kinds == {"peer", "orderer", "admin", "officer", "auditor", "citizen"}
