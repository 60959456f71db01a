"""An untouched demo ledger (``accessledger init`` + ``accessledger demo``) verifies.

The demo seeds through the real gateway (SDK, HTTP signatures, custodians
and their release logs), so this is the replay of what a newcomer's system
actually wrote: from the home (state, stores and key releases included) and
from an export.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from tests.audit.fhir_r4 import validate_bundle


def test_demo_ledger_replays_from_home_and_from_export(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--home", str(home)]).exit_code == 0
    seeded = runner.invoke(app, ["demo", "--home", str(home), "--people", "12", "--json"])
    assert seeded.exit_code == 0, seeded.output

    report = tmp_path / "home.json"
    from_home = runner.invoke(
        app,
        ["audit", "replay", "--home", str(home), "--stores", str(home / "stores"),
         "--report", str(report), "--workers", "0"],
    )  # fmt: skip
    assert from_home.exit_code == 0, from_home.output
    document = json.loads(report.read_text())
    assert document["checks"]["engine state"] == "identical to the replayed state"
    assert document["access"]["events"] > 0
    assert document["offchain"]["referenced"] > 0
    releases = document["checks"]["key releases"]
    assert releases.endswith("log(s)")
    assert not releases.startswith("0 ")

    exported = tmp_path / "ledger.bin"
    assert (
        runner.invoke(
            app, ["ledger", "export", "--home", str(home), "--out", str(exported)]
        ).exit_code
        == 0
    )
    from_export = runner.invoke(
        app, ["audit", "replay", "--export", str(exported), "--report", str(tmp_path / "x.json")]
    )
    assert from_export.exit_code == 0, from_export.output
    other = json.loads((tmp_path / "x.json").read_text())
    assert (other["height"], other["tip_hash"]) == (document["height"], document["tip_hash"])

    fhir = tmp_path / "events.json"
    assert (
        runner.invoke(
            app, ["audit", "export", "--format", "fhir", "--home", str(home), "--out", str(fhir)]
        ).exit_code
        == 0
    )
    assert validate_bundle(json.loads(fhir.read_text())) == []
